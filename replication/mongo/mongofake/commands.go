package mongofake

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Server error codes, as mongod sends them.
const (
	codeCommandNotFound         = 59
	codeWriteConcernFailed      = 64
	codeInvalidReplicaSetConfig = 93
	codeNotYetInitialized       = 94
	codeNewConfigIncompatible   = 103
	codeAlreadyInitialized      = 23
	codeNotWritablePrimary      = 10107
	codeNotPrimaryNoSecondaryOk = 13435
	codeCurrentConfigNotCommit  = 308
	codeDuplicateKey            = 11000
	codeBadValue                = 2
)

var codeNames = map[int]string{
	codeCommandNotFound: "CommandNotFound", codeWriteConcernFailed: "WriteConcernFailed",
	codeInvalidReplicaSetConfig: "InvalidReplicaSetConfig", codeNotYetInitialized: "NotYetInitialized",
	codeNewConfigIncompatible: "NewReplicaSetConfigurationIncompatible", codeAlreadyInitialized: "AlreadyInitialized",
	codeNotWritablePrimary: "NotWritablePrimary", codeNotPrimaryNoSecondaryOk: "NotPrimaryNoSecondaryOk",
	codeCurrentConfigNotCommit: "CurrentConfigNotCommittedYet", codeDuplicateKey: "DuplicateKey", codeBadValue: "BadValue",
}

type cmdError struct {
	code int
	msg  string
}

func (e *cmdError) Error() string { return e.msg }

func errf(code int, format string, args ...any) error {
	return &cmdError{code: code, msg: fmt.Sprintf(format, args...)}
}

var requestIDs atomic.Int32
var connIDs atomic.Int64

func (c *Cluster) handleConn(n *node, conn net.Conn) {
	r := bufio.NewReader(conn)
	connID := connIDs.Add(1)
	for {
		req, err := readRequest(r)
		if err != nil {
			return
		}
		reply, err := c.dispatch(n, req, connID)
		if err != nil {
			var ce *cmdError
			if !errors.As(err, &ce) {
				ce = &cmdError{code: codeBadValue, msg: err.Error()}
			}
			reply = bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: ce.msg}, {Key: "code", Value: int32(ce.code)}, {Key: "codeName", Value: codeNames[ce.code]}}
			if ce.code == codeNotWritablePrimary || ce.code == codeNotPrimaryNoSecondaryOk {
				reply = append(reply, bson.E{Key: "errorLabels", Value: bson.A{"RetryableWriteError"}})
			}
		}
		if req.noReply {
			continue
		}
		if err := writeReply(conn, req, requestIDs.Add(1), reply); err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
		}
	}
}

func (c *Cluster) dispatch(n *node, req *request, connID int64) (bson.D, error) {
	name := req.cmd[0].Key
	switch strings.ToLower(name) {
	case "hello", "ismaster":
		return c.hello(n, req, connID), nil
	case "ping", "endsessions", "killcursors":
		return ok(), nil
	case "buildinfo":
		return append(ok(), bson.E{Key: "version", Value: "7.0.0-mongofake"}, bson.E{Key: "versionArray", Value: bson.A{int32(7), int32(0), int32(0), int32(0)}}), nil
	case "replsetinitiate":
		return c.initiate(n, req.cmd)
	case "replsetgetconfig":
		return c.getConfig(n, req.cmd)
	case "replsetreconfig":
		return c.reconfig(n, req.cmd)
	case "replsetgetstatus":
		return c.status(n)
	case "setdefaultrwconcern":
		return c.setDefaultRW(n, req.cmd)
	case "getdefaultrwconcern":
		return c.getDefaultRW(n)
	case "insert":
		return c.insert(n, req)
	case "find":
		return c.find(n, req)
	case "count":
		return c.count(n, req)
	case strings.ToLower(peerCommand):
		return c.peerAnswer(n, req.cmd)
	}
	return nil, errf(codeCommandNotFound, "no such command: '%s' (mongofake implements only what sitectl uses)", name)
}

func ok() bson.D { return bson.D{{Key: "ok", Value: 1.0}} }

func stateOf(n *node) (int32, string) {
	me := n.self()
	switch {
	case n.cfg == nil:
		return 0, "STARTUP"
	case me == nil:
		return 10, "REMOVED"
	case me.ArbiterOnly:
		return 7, "ARBITER"
	case n.primary:
		return 1, "PRIMARY"
	}
	return 2, "SECONDARY"
}

func (c *Cluster) hello(n *node, req *request, connID int64) bson.D {
	c.mu.Lock()
	defer c.mu.Unlock()
	writableKey := "isWritablePrimary"
	if strings.EqualFold(req.cmd[0].Key, "ismaster") {
		writableKey = "ismaster"
	}
	d := bson.D{}
	if truthy(lookup(req.cmd, "helloOk")) {
		d = append(d, bson.E{Key: "helloOk", Value: true})
	}
	state, _ := stateOf(n)
	d = append(d, bson.E{Key: writableKey, Value: state == 1}, bson.E{Key: "secondary", Value: state == 2})
	if state == 0 || state == 10 {
		d = append(d, bson.E{Key: "isreplicaset", Value: true}, bson.E{Key: "info", Value: "Does not have a valid replica set config"})
	} else {
		var hosts, passives, arbiters bson.A
		for _, m := range n.cfg.Members {
			switch {
			case m.ArbiterOnly:
				arbiters = append(arbiters, m.Host)
			case m.Hidden:
			case m.Priority == 0:
				passives = append(passives, m.Host)
			default:
				hosts = append(hosts, m.Host)
			}
		}
		d = append(d, bson.E{Key: "setName", Value: n.cfg.ID}, bson.E{Key: "setVersion", Value: int32(n.cfg.Version)}, bson.E{Key: "hosts", Value: hosts})
		if len(passives) > 0 {
			d = append(d, bson.E{Key: "passives", Value: passives})
		}
		if len(arbiters) > 0 {
			d = append(d, bson.E{Key: "arbiters", Value: arbiters})
		}
		if p := c.primaryFor(n); p != "" {
			d = append(d, bson.E{Key: "primary", Value: p})
		}
		me := n.self()
		if me.ArbiterOnly {
			d = append(d, bson.E{Key: "arbiterOnly", Value: true})
		}
		if me.Hidden {
			d = append(d, bson.E{Key: "hidden", Value: true})
		}
		if me.Priority == 0 && !me.ArbiterOnly {
			d = append(d, bson.E{Key: "passive", Value: true})
		}
		if len(me.Tags) > 0 {
			d = append(d, bson.E{Key: "tags", Value: me.Tags})
		}
		d = append(d, bson.E{Key: "me", Value: n.host})
		if n.primary {
			d = append(d, bson.E{Key: "electionId", Value: electionID(c.term)})
		}
		last := n.lastOp()
		d = append(d, bson.E{Key: "lastWrite", Value: bson.D{{Key: "opTime", Value: bson.D{{Key: "ts", Value: last.TS}, {Key: "t", Value: last.T}}}, {Key: "lastWriteDate", Value: bson.NewDateTimeFromTime(last.Wall)}}})
	}
	return append(d,
		bson.E{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
		bson.E{Key: "maxMessageSizeBytes", Value: int32(maxMessage)},
		bson.E{Key: "maxWriteBatchSize", Value: int32(100000)},
		bson.E{Key: "localTime", Value: bson.NewDateTimeFromTime(c.now())},
		bson.E{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
		bson.E{Key: "connectionId", Value: int32(connID)},
		bson.E{Key: "minWireVersion", Value: int32(0)},
		bson.E{Key: "maxWireVersion", Value: int32(21)},
		bson.E{Key: "readOnly", Value: false},
		bson.E{Key: "ok", Value: 1.0})
}

// primaryFor is the primary member n reaches ("" if none).
func (c *Cluster) primaryFor(n *node) string {
	for _, h := range c.order {
		if c.nodes[h].primary && c.reach(n.host, h) && n.cfg != nil && n.cfg.member(h) != nil {
			return h
		}
	}
	return ""
}

func electionID(term int64) bson.ObjectID {
	var id bson.ObjectID
	copy(id[:], []byte{0x7f, 0xff, 0xff, 0xff})
	for i := 0; i < 8; i++ {
		id[11-i] = byte(term >> (8 * i))
	}
	return id
}

func (c *Cluster) validate(cfg *rsConfig) error {
	if cfg.ID == "" {
		return errf(codeInvalidReplicaSetConfig, "replica set config _id (the set name) is empty")
	}
	if len(cfg.Members) == 0 || len(cfg.Members) > 50 {
		return errf(codeInvalidReplicaSetConfig, "a replica set has 1 to 50 members, got %d", len(cfg.Members))
	}
	ids, hosts := map[int64]bool{}, map[string]bool{}
	voters := 0
	for _, m := range cfg.Members {
		if ids[m.ID] || hosts[m.Host] {
			return errf(codeInvalidReplicaSetConfig, "member _id %d / host %s appears twice", m.ID, m.Host)
		}
		ids[m.ID], hosts[m.Host] = true, true
		switch {
		case m.Votes != 0 && m.Votes != 1:
			return errf(codeInvalidReplicaSetConfig, "member %s: votes must be 0 or 1", m.Host)
		case m.Votes == 0 && m.Priority > 0:
			return errf(codeInvalidReplicaSetConfig, "member %s: priority must be 0 when non-voting (votes:0)", m.Host)
		case m.Hidden && m.Priority > 0:
			return errf(codeInvalidReplicaSetConfig, "member %s: priority must be 0 when hidden=true", m.Host)
		case m.ArbiterOnly && m.Priority > 0:
			return errf(codeInvalidReplicaSetConfig, "member %s: arbiters must have priority 0", m.Host)
		case m.SecondaryDelaySecs > 0 && m.Priority > 0:
			return errf(codeInvalidReplicaSetConfig, "member %s: priority must be 0 when secondaryDelaySecs is set", m.Host)
		}
		voters += int(m.Votes)
	}
	if voters > 7 {
		return errf(codeInvalidReplicaSetConfig, "%d voting members; at most 7 allowed", voters)
	}
	if voters == 0 {
		return errf(codeInvalidReplicaSetConfig, "a replica set needs at least one voting member")
	}
	return nil
}

// readConfig decodes a config from a command field, filling MongoDB's defaults.
func readConfig(v any) (*rsConfig, error) {
	d, ok := v.(bson.D)
	if !ok {
		return nil, errf(codeBadValue, "the config must be a document")
	}
	cfg := &rsConfig{}
	if err := decode(d, cfg); err != nil {
		return nil, errf(codeInvalidReplicaSetConfig, "bad config: %v", err)
	}
	// Fields absent from the document take MongoDB's defaults.
	rawMembers, _ := lookup(d, "members").(bson.A)
	for i, raw := range rawMembers {
		if i >= len(cfg.Members) {
			break
		}
		md, _ := raw.(bson.D)
		m := &cfg.Members[i]
		if lookup(md, "votes") == nil {
			m.Votes = 1
		}
		if lookup(md, "priority") == nil && !m.ArbiterOnly {
			m.Priority = 1
		}
		if lookup(md, "buildIndexes") == nil {
			m.BuildIndexes = true
		}
	}
	cfg.ProtocolVersion = 1
	return cfg, nil
}

func (c *Cluster) initiate(n *node, cmd bson.D) (bson.D, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.cfg != nil {
		return nil, errf(codeAlreadyInitialized, "already initialized")
	}
	v := cmd[0].Value
	var cfg *rsConfig
	if d, isDoc := v.(bson.D); isDoc && len(d) > 0 {
		var err error
		if cfg, err = readConfig(d); err != nil {
			return nil, err
		}
	} else {
		cfg = &rsConfig{ID: "rs0", ProtocolVersion: 1, Members: []rsMember{{ID: 0, Host: n.host, Votes: 1, Priority: 1, BuildIndexes: true}}}
	}
	if cfg.Version == 0 {
		cfg.Version = 1
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	if cfg.member(n.host) == nil {
		return nil, errf(codeInvalidReplicaSetConfig, "no host described in new configuration with {version: %d, term: 0} for replica set %s maps to this node (%s)", cfg.Version, cfg.ID, n.host)
	}
	for _, m := range cfg.Members {
		o := c.nodes[m.Host]
		if !c.reach(n.host, m.Host) {
			return nil, errf(codeNodeNotFound, "replSetInitiate quorum check failed because not all proposed set members responded affirmatively: %s failed with Connection refused", m.Host)
		}
		if o.cfg != nil {
			return nil, errf(codeInvalidReplicaSetConfig, "member %s is already part of replica set %s", m.Host, o.cfg.ID)
		}
	}
	cfg.Term = c.term + 1
	n.cfg = cfg
	n.oplog = append(n.oplog, oplogEntry{TS: c.nextTS(), T: c.term + 1, Op: "n", O: bson.D{{Key: "msg", Value: "initiating set"}}, Wall: c.now()})
	c.recompute()
	return ok(), nil
}

const codeNodeNotFound = 74

// configDoc is the config as replSetGetConfig shows it (newlyAdded hidden).
func (c *Cluster) configDoc(cfg *rsConfig) bson.D {
	shown := cfg.clone()
	for i := range shown.Members {
		shown.Members[i].NewlyAdded = false
	}
	var d bson.D
	_ = decode(shown, &d)
	return d
}

func (c *Cluster) committed(n *node) bool {
	p := c.nodes[c.primaryFor(n)]
	if p == nil {
		return false
	}
	have := 0
	for _, m := range p.cfg.Members {
		if o := c.nodes[m.Host]; m.voting() && o != nil && !o.down && o.cfg != nil && o.cfg.Version == p.cfg.Version && c.reach(p.host, m.Host) {
			have++
		}
	}
	return have >= p.cfg.majority()
}

func (c *Cluster) getConfig(n *node, cmd bson.D) (bson.D, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.cfg == nil {
		return nil, errf(codeNotYetInitialized, "no replset config has been received")
	}
	d := bson.D{{Key: "config", Value: c.configDoc(n.cfg)}}
	if truthy(lookup(cmd, "commitmentStatus")) {
		if !n.primary {
			return nil, errf(codeNotWritablePrimary, "commitmentStatus is only supported on primary")
		}
		d = append(d, bson.E{Key: "commitmentStatus", Value: c.committed(n)})
	}
	return append(d, ok()...), nil
}

func (c *Cluster) reconfig(n *node, cmd bson.D) (bson.D, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	force := truthy(lookup(cmd, "force"))
	if n.cfg == nil {
		return nil, errf(codeNotYetInitialized, "no replset config has been received")
	}
	if !force && !n.primary {
		return nil, errf(codeNotWritablePrimary, "replSetReconfig should only be run on a writable PRIMARY; use force to reconfigure a secondary")
	}
	cfg, err := readConfig(cmd[0].Value)
	if err != nil {
		return nil, err
	}
	if cfg.ID != n.cfg.ID {
		return nil, errf(codeNewConfigIncompatible, "new and old configurations differ in replica set name; old was %s, new is %s", n.cfg.ID, cfg.ID)
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	if cfg.member(n.host) == nil {
		return nil, errf(codeInvalidReplicaSetConfig, "this node (%s) is not in the new configuration", n.host)
	}
	if force {
		// mongod picks a much higher version for a forced config, so it wins anywhere.
		cfg.Version = max(cfg.Version, n.cfg.Version+10000)
		c.term++
		n.primary = false
	} else {
		if cfg.Version <= n.cfg.Version {
			return nil, errf(codeNewConfigIncompatible, "new config version %d must be greater than the current version %d", cfg.Version, n.cfg.Version)
		}
		if !c.committed(n) {
			return nil, errf(codeCurrentConfigNotCommit, "cannot run replSetReconfig because the current config is not yet committed to a majority of nodes")
		}
		for _, m := range cfg.Members {
			if old := n.cfg.member(m.Host); old != nil && old.ID != m.ID {
				return nil, errf(codeNewConfigIncompatible, "member %s changed _id from %d to %d", m.Host, old.ID, m.ID)
			}
		}
		changes := 0
		for _, m := range cfg.Members {
			old := n.cfg.member(m.Host)
			if (old == nil && m.Votes > 0) || (old != nil && (old.Votes > 0) != (m.Votes > 0)) {
				changes++
			}
		}
		for _, old := range n.cfg.Members {
			if cfg.member(old.Host) == nil && old.Votes > 0 {
				changes++
			}
		}
		if changes > 1 {
			return nil, errf(codeNewConfigIncompatible, "non force replica set reconfig can only add or remove at most 1 voting member (this one changes %d)", changes)
		}
	}
	// A voting member that was not voting before counts only once it has caught up.
	for i, m := range cfg.Members {
		old := n.cfg.member(m.Host)
		if m.Votes > 0 && !force && (old == nil || old.Votes == 0 || old.NewlyAdded) {
			cfg.Members[i].NewlyAdded = true
		}
	}
	cfg.Term = c.term
	n.cfg = cfg
	c.recompute()
	return ok(), nil
}

func (c *Cluster) status(n *node) (bson.D, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.cfg == nil {
		return nil, errf(codeNotYetInitialized, "no replset config has been received")
	}
	myState, _ := stateOf(n)
	var members bson.A
	for _, m := range n.cfg.Members {
		o := c.nodes[m.Host]
		md := bson.D{{Key: "_id", Value: int32(m.ID)}, {Key: "name", Value: m.Host}}
		if o == nil || !c.reach(n.host, m.Host) {
			md = append(md, bson.E{Key: "health", Value: 0.0}, bson.E{Key: "state", Value: int32(8)}, bson.E{Key: "stateStr", Value: "(not reachable/healthy)"},
				bson.E{Key: "optime", Value: bson.D{{Key: "ts", Value: bson.Timestamp{}}, {Key: "t", Value: int64(-1)}}}, bson.E{Key: "optimeDate", Value: bson.NewDateTimeFromTime(time.Unix(0, 0))})
		} else {
			st, str := stateOf(o)
			last := o.lastOp()
			md = append(md, bson.E{Key: "health", Value: 1.0}, bson.E{Key: "state", Value: st}, bson.E{Key: "stateStr", Value: str},
				bson.E{Key: "uptime", Value: int32(c.now().Sub(o.started).Seconds())},
				bson.E{Key: "optime", Value: bson.D{{Key: "ts", Value: last.TS}, {Key: "t", Value: last.T}}}, bson.E{Key: "optimeDate", Value: bson.NewDateTimeFromTime(last.Wall)})
			if o.cfg != nil {
				md = append(md, bson.E{Key: "configVersion", Value: int32(o.cfg.Version)})
			}
		}
		if m.Host == n.host {
			md = append(md, bson.E{Key: "self", Value: true})
		}
		members = append(members, md)
	}
	all, data := n.cfg.voters()
	return append(bson.D{
		{Key: "set", Value: n.cfg.ID},
		{Key: "date", Value: bson.NewDateTimeFromTime(c.now())},
		{Key: "myState", Value: myState},
		{Key: "term", Value: c.term},
		{Key: "majorityVoteCount", Value: int32(n.cfg.majority())},
		{Key: "writeMajorityCount", Value: int32(n.cfg.writeMajority())},
		{Key: "votingMembersCount", Value: int32(all)},
		{Key: "writableVotingMembersCount", Value: int32(data)},
		{Key: "members", Value: members},
	}, ok()...), nil
}

// implicitWC is MongoDB's implicit default write concern: majority, unless arbiters
// leave too few data-bearing voters (then w:1).
func implicitWC(cfg *rsConfig) bson.D {
	if cfg != nil {
		all, data := cfg.voters()
		if all > data && data <= all/2+1 {
			return bson.D{{Key: "w", Value: int32(1)}, {Key: "wtimeout", Value: int32(0)}}
		}
	}
	return bson.D{{Key: "w", Value: "majority"}, {Key: "wtimeout", Value: int32(0)}}
}

func (c *Cluster) getDefaultRW(n *node) (bson.D, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := bson.D{}
	if c.defaultWC != nil {
		d = append(d, bson.E{Key: "defaultWriteConcern", Value: c.defaultWC}, bson.E{Key: "defaultWriteConcernSource", Value: "global"})
	} else {
		d = append(d, bson.E{Key: "defaultWriteConcern", Value: implicitWC(n.cfg)}, bson.E{Key: "defaultWriteConcernSource", Value: "implicit"})
	}
	d = append(d, bson.E{Key: "defaultReadConcern", Value: bson.D{{Key: "level", Value: "local"}}}, bson.E{Key: "defaultReadConcernSource", Value: "implicit"})
	return append(d, ok()...), nil
}

func (c *Cluster) setDefaultRW(n *node, cmd bson.D) (bson.D, error) {
	c.mu.Lock()
	if !n.primary {
		c.mu.Unlock()
		return nil, errf(codeNotWritablePrimary, "setDefaultRWConcern must run on the primary")
	}
	wc, isDoc := lookup(cmd, "defaultWriteConcern").(bson.D)
	if !isDoc {
		c.mu.Unlock()
		return nil, errf(codeBadValue, "setDefaultRWConcern needs defaultWriteConcern")
	}
	if w := lookup(wc, "w"); w == nil {
		c.mu.Unlock()
		return nil, errf(codeBadValue, "the default write concern must set w")
	}
	c.defaultWC = wc
	c.mu.Unlock()
	return c.getDefaultRW(n)
}

// writeConcern is the effective write concern of a write command.
func (c *Cluster) writeConcern(cmd bson.D, cfg *rsConfig) (majority bool, wtimeout time.Duration) {
	wc, _ := lookup(cmd, "writeConcern").(bson.D)
	if wc == nil || lookup(wc, "w") == nil {
		wc = c.defaultWC
		if wc == nil {
			wc = implicitWC(cfg)
		}
	}
	if ms, ok := asInt(lookup(wc, "wtimeout")); ok && ms > 0 {
		wtimeout = time.Duration(ms) * time.Millisecond
	}
	w := lookup(wc, "w")
	if s, isStr := w.(string); isStr {
		return s == "majority", wtimeout
	}
	n, _ := asInt(w)
	return n > 1, wtimeout
}

// maxWait bounds a majority write with no wtimeout (mongod would wait forever).
const maxWait = 30 * time.Second

func (c *Cluster) insert(n *node, req *request) (bson.D, error) {
	coll, _ := req.cmd[0].Value.(string)
	docs, _ := lookup(req.cmd, "documents").(bson.A)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !n.primary {
		return nil, errf(codeNotWritablePrimary, "not primary")
	}
	ns := req.db + "." + coll
	existing := c.docs(n, ns)
	var last bson.Timestamp
	inserted := int32(0)
	var writeErrors bson.A
	for i, raw := range docs {
		d, _ := raw.(bson.D)
		id := lookup(d, "_id")
		if id == nil {
			id = bson.NewObjectID()
			d = append(bson.D{{Key: "_id", Value: id}}, d...)
		}
		if dupe := findByID(existing, id); dupe {
			writeErrors = append(writeErrors, bson.D{{Key: "index", Value: int32(i)}, {Key: "code", Value: int32(codeDuplicateKey)}, {Key: "errmsg", Value: fmt.Sprintf("E11000 duplicate key error collection: %s index: _id_ dup key: { _id: %v }", ns, id)}})
			break
		}
		last = c.nextTS()
		n.oplog = append(n.oplog, oplogEntry{TS: last, T: c.term, Op: "i", NS: ns, O: d, Wall: c.now()})
		existing = append(existing, d)
		inserted++
	}
	c.recompute()
	reply := bson.D{{Key: "n", Value: inserted}}
	if writeErrors != nil {
		reply = append(reply, bson.E{Key: "writeErrors", Value: writeErrors})
	}
	majority, wtimeout := c.writeConcern(req.cmd, n.cfg)
	if inserted > 0 && majority {
		if wtimeout == 0 {
			wtimeout = maxWait
		}
		deadline := time.Now().Add(wtimeout)
		timer := time.AfterFunc(wtimeout, func() { c.mu.Lock(); c.changed.Broadcast(); c.mu.Unlock() })
		defer timer.Stop()
		for c.acks(n, last) < n.cfg.writeMajority() && !c.closed {
			if !n.primary {
				return nil, errf(codeNotWritablePrimary, "operation was interrupted because the node stepped down while waiting for write concern")
			}
			if !time.Now().Before(deadline) {
				reply = append(reply, bson.E{Key: "writeConcernError", Value: bson.D{{Key: "code", Value: int32(codeWriteConcernFailed)}, {Key: "codeName", Value: "WriteConcernFailed"}, {Key: "errmsg", Value: "waiting for replication timed out"}, {Key: "errInfo", Value: bson.D{{Key: "wtimeout", Value: true}}}}})
				break
			}
			c.changed.Wait()
		}
	}
	return append(reply, ok()...), nil
}

// docs replays n's oplog into the documents of ns.
func (c *Cluster) docs(n *node, ns string) []bson.D {
	var out []bson.D
	for _, e := range n.oplog {
		if e.Op == "i" && e.NS == ns {
			out = append(out, e.O)
		}
	}
	return out
}

func findByID(docs []bson.D, id any) bool {
	for _, d := range docs {
		if equal(lookup(d, "_id"), id) {
			return true
		}
	}
	return false
}

func equal(a, b any) bool {
	ta, ba, err1 := bson.MarshalValue(a)
	tb, bb, err2 := bson.MarshalValue(b)
	return err1 == nil && err2 == nil && ta == tb && string(ba) == string(bb)
}

func matches(d, filter bson.D) (bool, error) {
	for _, f := range filter {
		if strings.HasPrefix(f.Key, "$") {
			return false, errf(codeBadValue, "mongofake supports equality filters only, not %s", f.Key)
		}
		if sub, isDoc := f.Value.(bson.D); isDoc && len(sub) > 0 && strings.HasPrefix(sub[0].Key, "$") {
			return false, errf(codeBadValue, "mongofake supports equality filters only, not %s", sub[0].Key)
		}
		if !equal(lookup(d, f.Key), f.Value) {
			return false, nil
		}
	}
	return true, nil
}

// readable returns the documents of ns at n, or an error when n may not serve reads.
func (c *Cluster) readable(n *node, req *request, ns string) ([]bson.D, error) {
	if n.cfg != nil && !n.primary && !req.secondary {
		return nil, errf(codeNotPrimaryNoSecondaryOk, "not primary and secondaryOk=false")
	}
	if ns == "local.oplog.rs" {
		var out []bson.D
		for _, e := range n.oplog {
			var d bson.D
			_ = decode(e, &d)
			out = append(out, d)
		}
		return out, nil
	}
	return c.docs(n, ns), nil
}

func (c *Cluster) find(n *node, req *request) (bson.D, error) {
	coll, _ := req.cmd[0].Value.(string)
	ns := req.db + "." + coll
	c.mu.Lock()
	defer c.mu.Unlock()
	all, err := c.readable(n, req, ns)
	if err != nil {
		return nil, err
	}
	filter, _ := lookup(req.cmd, "filter").(bson.D)
	var out bson.A
	for _, d := range all {
		m, err := matches(d, filter)
		if err != nil {
			return nil, err
		}
		if m {
			out = append(out, d)
		}
	}
	if sortDoc, _ := lookup(req.cmd, "sort").(bson.D); len(sortDoc) > 0 {
		dir, _ := asInt(sortDoc[0].Value)
		if sortDoc[0].Key != "$natural" {
			return nil, errf(codeBadValue, "mongofake sorts by $natural only")
		}
		if dir < 0 {
			for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	if limit, _ := asInt(lookup(req.cmd, "limit")); limit > 0 && int(limit) < len(out) {
		out = out[:limit]
	}
	if out == nil {
		out = bson.A{}
	}
	return append(bson.D{{Key: "cursor", Value: bson.D{{Key: "firstBatch", Value: out}, {Key: "id", Value: int64(0)}, {Key: "ns", Value: ns}}}}, ok()...), nil
}

func (c *Cluster) count(n *node, req *request) (bson.D, error) {
	coll, _ := req.cmd[0].Value.(string)
	c.mu.Lock()
	defer c.mu.Unlock()
	all, err := c.readable(n, req, req.db+"."+coll)
	if err != nil {
		return nil, err
	}
	query, _ := lookup(req.cmd, "query").(bson.D)
	cnt := int32(0)
	for _, d := range all {
		m, err := matches(d, query)
		if err != nil {
			return nil, err
		}
		if m {
			cnt++
		}
	}
	return append(bson.D{{Key: "n", Value: cnt}}, ok()...), nil
}
