package mongofake

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"

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
	codeUnauthorized: "Unauthorized", codeAuthenticationFailed: "AuthenticationFailed", codeNodeNotFound: "NodeNotFound",
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

func (c *Cluster) handleConn(n *node, nc net.Conn) {
	r := bufio.NewReader(nc)
	cn := &conn{id: connIDs.Add(1)}
	for {
		req, err := readRequest(r)
		if err != nil {
			return
		}
		reply, err := c.dispatch(n, req, cn)
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
		if err := writeReply(nc, req, requestIDs.Add(1), reply); err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
		}
	}
}

func (c *Cluster) dispatch(n *node, req *request, cn *conn) (bson.D, error) {
	name := req.cmd[0].Key
	if err := c.authorize(cn, strings.ToLower(name)); err != nil {
		return nil, err
	}
	switch strings.ToLower(name) {
	case "hello", "ismaster":
		return c.hello(n, req, cn.id), nil
	case "saslstart":
		return c.saslStart(cn, req.cmd)
	case "saslcontinue":
		return c.saslStep(cn, req.cmd)
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
	case "replsetstepdown":
		return c.stepDown(n, req.cmd)
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
	case n.syncing:
		return 5, "STARTUP2"
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
	if _, asked := lookup(req.cmd, "saslSupportedMechs").(string); asked && len(c.users) > 0 {
		d = append(d, bson.E{Key: "saslSupportedMechs", Value: bson.A{"SCRAM-SHA-256"}})
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
