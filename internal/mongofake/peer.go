package mongofake

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// peerCommand is the fake's own heartbeat between processes (Serve): the caller
// pushes its config and last write; the answer carries the callee's state and, from
// a primary, its oplog. It stands in for mongod's replSetHeartbeat and oplog fetching,
// which it does not imitate.
const peerCommand = "mongofakePeer"

// ProbeInterval is how often a served member probes the members it does not serve.
var ProbeInterval = 300 * time.Millisecond

type peerState struct {
	Initiated bool         `bson:"initiated"`
	Config    *rsConfig    `bson:"config,omitempty"`
	Primary   bool         `bson:"primary"`
	Term      int64        `bson:"term"`
	LastOp    oplogEntry   `bson:"lastOp"`
	Oplog     []oplogEntry `bson:"oplog,omitempty"`
	// Frozen: the member stepped down (replSetStepDown) and does not stand for
	// election yet; its peers must not wait for it.
	Frozen bool `bson:"frozen,omitempty"`
	// DefaultWC is the cluster-wide default write concern this process holds:
	// mongod keeps it in config.settings, replicated, so a member resynced empty
	// has it too.
	DefaultWC bson.D `bson:"defaultWC,omitempty"`
}

// peerAnswer handles a peer's heartbeat at member n.
func (c *Cluster) peerAnswer(n *node, cmd bson.D) (bson.D, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	from, _ := lookup(cmd, "from").(string)
	if c.peers && from != "" && from != n.host {
		c.addRemote(from)
	}
	if d, isDoc := lookup(cmd, "config").(bson.D); isDoc && len(d) > 0 {
		var cfg rsConfig
		if err := decode(d, &cfg); err == nil {
			if (n.cfg == nil && cfg.member(n.host) != nil) || (n.cfg != nil && n.cfg.ID == cfg.ID && n.cfg.Version < cfg.Version) {
				n.cfg = &cfg
			}
		}
	}
	if t, ok := asInt(lookup(cmd, "term")); ok && t > c.term {
		c.term = t
	}
	var theirs oplogEntry
	if d, isDoc := lookup(cmd, "lastOp").(bson.D); isDoc {
		_ = decode(d, &theirs)
	}
	c.recompute()
	st := peerState{Initiated: n.cfg != nil, Config: n.cfg, Primary: n.primary, Term: c.term, LastOp: n.lastOp(), Frozen: n.frozen(), DefaultWC: c.defaultWC}
	if n.primary && (theirs.TS != st.LastOp.TS || theirs.T != st.LastOp.T) {
		st.Oplog = n.oplog
	}
	var d bson.D
	if err := decode(st, &d); err != nil {
		return nil, err
	}
	return append(d, ok()...), nil
}

// probeLoop heartbeats every remote member until the cluster closes. Each peer is
// probed on its own, so one behind a cut (its probes timing out) delays nobody.
func (c *Cluster) probeLoop(ctx context.Context) {
	t := time.NewTicker(ProbeInterval)
	defer t.Stop()
	inflight := map[string]bool{}
	var mu sync.Mutex
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		req, remotes := c.heartbeat()
		for _, h := range remotes {
			mu.Lock()
			busy := inflight[h]
			inflight[h] = true
			mu.Unlock()
			if busy {
				continue
			}
			go func() {
				st, err := c.call(ctx, h, req)
				if err != nil {
					st = nil
				}
				c.applyProbe(h, st)
				mu.Lock()
				delete(inflight, h)
				mu.Unlock()
			}()
		}
	}
}

// heartbeat returns the message this process sends its peers, and the peers.
func (c *Cluster) heartbeat() (bson.D, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var self *node
	var remotes []string
	for _, h := range c.order {
		n := c.nodes[h]
		if n.remote {
			remotes = append(remotes, h)
		} else if self == nil {
			self = n
		}
	}
	if c.closed || self == nil || self.down {
		return nil, nil
	}
	req := bson.D{{Key: peerCommand, Value: 1}, {Key: "from", Value: self.host}, {Key: "term", Value: c.term}}
	if self.cfg != nil {
		req = append(req, bson.E{Key: "config", Value: self.cfg.clone()})
	}
	var last bson.D
	_ = decode(self.lastOp(), &last)
	return append(req, bson.E{Key: "lastOp", Value: last}, bson.E{Key: "$db", Value: "admin"}), remotes
}

// applyProbe records what a peer answered (nil: it did not) and settles the set.
func (c *Cluster) applyProbe(host string, st *peerState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[host]
	if n == nil || c.closed {
		return
	}
	if st == nil {
		n.probeOK, n.primary = false, false
		c.recompute()
		return
	}
	n.probeOK, n.primary, n.last, n.remoteFrozen = true, st.Primary, st.LastOp, st.Frozen
	if st.Initiated {
		n.cfg = st.Config
	} else {
		n.cfg = nil
	}
	if st.Oplog != nil {
		n.oplog = st.Oplog
	} else if !n.primary {
		n.oplog = nil
	}
	if st.Term > c.term {
		c.term = st.Term
	}
	if c.defaultWC == nil && st.DefaultWC != nil {
		c.defaultWC = st.DefaultWC
	}
	c.recompute()
}

// call sends one command to a peer and decodes the answer.
func (c *Cluster) call(ctx context.Context, host string, cmd bson.D) (*peerState, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*ProbeInterval+time.Second)
	defer cancel()
	dial := c.dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	raw, err := bson.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 21, 21+len(raw))
	binary.LittleEndian.PutUint32(msg[0:], uint32(21+len(raw)))
	binary.LittleEndian.PutUint32(msg[4:], uint32(requestIDs.Add(1)))
	binary.LittleEndian.PutUint32(msg[12:], opMsg)
	if _, err := conn.Write(append(msg, raw...)); err != nil {
		return nil, err
	}
	reply, err := readRequest(bufio.NewReader(conn))
	if err != nil {
		return nil, err
	}
	if okv, _ := asInt(lookup(reply.cmd, "ok")); okv != 1 {
		return nil, fmt.Errorf("peer %s: %v", host, lookup(reply.cmd, "errmsg"))
	}
	var st peerState
	if err := decode(reply.cmd, &st); err != nil {
		return nil, err
	}
	return &st, nil
}
