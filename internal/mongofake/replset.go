package mongofake

import (
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

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

// quorumCheck is mongod's check before a non-forced reconfig: a majority of the new
// config's voting members must answer this member's heartbeats (a member in initial
// sync answers and counts; a newly added one does not vote yet), else NodeNotFound. A reconfig that leaves the primary
// unable to reach a majority of the new voters is refused, not applied and followed
// by a step-down.
func (c *Cluster) quorumCheck(n *node, cfg *rsConfig) error {
	var voted, failed []string
	votes, need := 0, 0
	for _, m := range cfg.Members {
		if !m.voting() {
			continue
		}
		need += int(m.Votes)
		if c.reach(n.host, m.Host) {
			votes += int(m.Votes)
			voted = append(voted, m.Host)
		} else {
			failed = append(failed, m.Host+" failed with Connection refused")
		}
	}
	if need = need/2 + 1; votes >= need {
		return nil
	}
	return errf(codeNodeNotFound, "Quorum check failed because not enough voting nodes responded; required %d but only the following %d voting nodes responded: %s; the following nodes did not respond affirmatively: %s",
		need, len(voted), strings.Join(voted, ", "), strings.Join(failed, ", "))
}

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
	if me := cfg.member(n.host); !force && !me.electable() {
		return nil, errf(codeNewConfigIncompatible, "this node, %s, is the primary and would not be electable under the new configuration; step it down first (replSetStepDown)", n.host)
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
	if !force {
		if err := c.quorumCheck(n, cfg); err != nil {
			return nil, err
		}
	}
	cfg.Term = c.term
	n.cfg = cfg
	c.record(n.host, force, cfg)
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
	var syncStatus bson.D
	if n.syncing {
		syncStatus = bson.D{{Key: "initialSyncStatus", Value: c.initialSyncStatus(n)}}
	}
	return append(append(bson.D{
		{Key: "set", Value: n.cfg.ID},
		{Key: "date", Value: bson.NewDateTimeFromTime(c.now())},
		{Key: "myState", Value: myState},
		{Key: "term", Value: c.term},
		{Key: "majorityVoteCount", Value: int32(n.cfg.majority())},
		{Key: "writeMajorityCount", Value: int32(n.cfg.writeMajority())},
		{Key: "votingMembersCount", Value: int32(all)},
		{Key: "writableVotingMembersCount", Value: int32(data)},
		{Key: "members", Value: members},
	}, syncStatus...), ok()...), nil
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

func (c *Cluster) stepDown(n *node, cmd bson.D) (bson.D, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !n.primary {
		return nil, errf(codeNotWritablePrimary, "not primary so can't step down")
	}
	secs, isNum := asInt(cmd[0].Value)
	if !isNum || secs <= 0 {
		secs = 60
	}
	n.primary = false
	n.frozenUntil = time.Now().Add(time.Duration(secs) * time.Second)
	time.AfterFunc(time.Duration(secs)*time.Second, c.kick)
	c.recompute()
	return ok(), nil
}
