// Package mongofake is a TEST FAKE of a MongoDB replica set, not a database. It speaks
// the real MongoDB wire protocol (OP_MSG, and the OP_QUERY hello handshake) to the
// real mongo-driver and implements only the commands sitectl uses: hello/isMaster,
// replSetInitiate, replSetGetConfig (with commitmentStatus), replSetReconfig (with
// MongoDB's rules: primary only, one voting change unless forced, previous config
// committed, a majority of the new voters answering), replSetGetStatus, setDefaultRWConcern/getDefaultRWConcern, and
// insert/find/count with equality filters (plus local.oplog.rs for the oplog window).
//
// A Cluster runs several members in one process, each on its own TCP listener, and
// holds replica-set state the way a replica set would: a primary elected where a
// majority of the votes is (highest priority first), configs propagated to reachable
// members, oplogs copied to members the primary reaches, divergent entries rolled
// back, w:majority writes acknowledged only when a majority of data-bearing voters
// hold them. Tests cut links between members (Cut) or take members down (SetDown) to
// make partitions mean something. Elections and replication are instantaneous; there
// are no timeouts, journals, indexes, auth or query language beyond equality.
package mongofake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// rsConfig is a replica set config as the fake stores it.
type rsConfig struct {
	ID              string     `bson:"_id"`
	Version         int64      `bson:"version"`
	Term            int64      `bson:"term"`
	ProtocolVersion int64      `bson:"protocolVersion"`
	Members         []rsMember `bson:"members"`
	Settings        bson.Raw   `bson:"settings,omitempty"`
}

type rsMember struct {
	ID                 int64             `bson:"_id"`
	Host               string            `bson:"host"`
	ArbiterOnly        bool              `bson:"arbiterOnly"`
	BuildIndexes       bool              `bson:"buildIndexes"`
	Hidden             bool              `bson:"hidden"`
	Priority           float64           `bson:"priority"`
	Tags               map[string]string `bson:"tags"`
	SecondaryDelaySecs int64             `bson:"secondaryDelaySecs"`
	Votes              int64             `bson:"votes"`
	// NewlyAdded marks a voting member added by a reconfig that has not caught up
	// yet: it does not count towards majorities until the primary clears the flag
	// (MongoDB 4.4+ does the same, so adding a member never costs the primary its
	// majority). Hidden from replSetGetConfig.
	NewlyAdded bool `bson:"newlyAdded,omitempty"`
}

func (c *rsConfig) clone() *rsConfig {
	out := *c
	out.Members = slices.Clone(c.Members)
	return &out
}

func (c *rsConfig) member(host string) *rsMember {
	for i := range c.Members {
		if c.Members[i].Host == host {
			return &c.Members[i]
		}
	}
	return nil
}

func (c *rsConfig) voters() (all, data int) {
	for _, m := range c.Members {
		if m.voting() {
			all++
			if !m.ArbiterOnly {
				data++
			}
		}
	}
	return
}

func (c *rsConfig) majority() int { v, _ := c.voters(); return v/2 + 1 }

func (c *rsConfig) writeMajority() int { _, d := c.voters(); return min(c.majority(), d) }

func (m rsMember) electable() bool {
	return m.voting() && m.Priority > 0 && !m.ArbiterOnly && !m.Hidden
}

// voting reports whether the member's vote counts now.
func (m rsMember) voting() bool { return m.Votes > 0 && !m.NewlyAdded }

// oplogEntry is one write in a member's oplog.
type oplogEntry struct {
	TS   bson.Timestamp `bson:"ts"`
	T    int64          `bson:"t"`
	Op   string         `bson:"op"`
	NS   string         `bson:"ns"`
	O    bson.D         `bson:"o"`
	Wall time.Time      `bson:"wall"`
	// idKey caches idKey(O._id) for duplicate checks ("" until computed).
	idKey string
}

func (e *oplogEntry) key() string {
	if e.idKey == "" {
		e.idKey = idKey(lookup(e.O, "_id"))
	}
	return e.idKey
}

// node is one member process: served here, or (remote) another process this one
// probes over the network.
type node struct {
	host    string
	remote  bool
	probeOK bool
	last    oplogEntry // a remote member's last write, as it reported it
	ln      net.Listener
	down    bool
	cfg     *rsConfig
	primary bool
	started time.Time
	oplog   []oplogEntry
	// rolledBack holds entries removed from this member's oplog when it rejoined a
	// primary whose history diverged (MongoDB writes them to rollback/ files).
	rolledBack []oplogEntry
	conns      map[net.Conn]bool
	// lostAt is when this primary lost its majority (zero while it has one).
	lostAt time.Time
	// frozenUntil: after replSetStepDown the member does not stand for election;
	// remoteFrozen: a remote member said so in its last heartbeat answer.
	frozenUntil  time.Time
	remoteFrozen bool
	// ids indexes the inserted _ids per namespace over oplog[:idsLen] (whose last
	// entry had idsLast), extended as the oplog grows, rebuilt when it was replaced.
	ids     map[string]map[string]bool
	idsLen  int
	idsLast bson.Timestamp
	// syncing: in initial sync (STARTUP2) from syncStart until syncUntil (SetInitialSync).
	syncing              bool
	syncStart, syncUntil time.Time
}

// hasID reports whether ns holds a document with that id key.
func (n *node) hasID(ns, key string) bool {
	if n.idsLen > len(n.oplog) || (n.idsLen > 0 && n.oplog[n.idsLen-1].TS != n.idsLast) {
		n.ids, n.idsLen = nil, 0
	}
	if n.ids == nil {
		n.ids = map[string]map[string]bool{}
	}
	for ; n.idsLen < len(n.oplog); n.idsLen++ {
		e := &n.oplog[n.idsLen]
		if e.Op != "i" {
			continue
		}
		if n.ids[e.NS] == nil {
			n.ids[e.NS] = map[string]bool{}
		}
		n.ids[e.NS][e.key()] = true
	}
	if n.idsLen > 0 {
		n.idsLast = n.oplog[n.idsLen-1].TS
	}
	return n.ids[ns][key]
}

func (n *node) frozen() bool {
	if n.remote {
		return n.remoteFrozen
	}
	return time.Now().Before(n.frozenUntil)
}

func (n *node) lastOp() oplogEntry {
	if n.remote {
		return n.last
	}
	if len(n.oplog) == 0 {
		return oplogEntry{}
	}
	return n.oplog[len(n.oplog)-1]
}

func (n *node) self() *rsMember {
	if n.cfg == nil {
		return nil
	}
	return n.cfg.member(n.host)
}

// Cluster is a set of fake members sharing one process.
type Cluster struct {
	mu      sync.Mutex
	changed *sync.Cond
	nodes   map[string]*node
	order   []string
	cuts    map[[2]string]bool
	term    int64
	ts      bson.Timestamp
	// defaultWC is the cluster-wide default write concern (nil: implicit).
	defaultWC bson.D
	now       func() time.Time
	closed    bool
	// peers: members named in a config but not served here are other processes,
	// probed over the network (Serve); otherwise they count as down (NewCluster).
	peers bool
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	// stepDownAfter delays a primary's step-down after it loses its majority.
	stepDownAfter time.Duration
	// users are the SCRAM users (AddUser); none means no authentication.
	users map[string]scram.StoredCredentials
	// initialSync is how long an empty member spends in STARTUP2 (SetInitialSync).
	initialSync time.Duration
	reconfigs   []Reconfig
	wg          sync.WaitGroup
}

// NewCluster starts n members listening on 127.0.0.1 ports picked by the kernel.
// None is initiated: send replSetInitiate to one of them, as to fresh mongods.
func NewCluster(n int) (*Cluster, error) {
	c := newCluster()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("mongofake: listen: %w", err)
		}
		c.serve(ln, ln.Addr().String())
	}
	return c, nil
}

func newCluster() *Cluster {
	c := &Cluster{nodes: map[string]*node{}, cuts: map[[2]string]bool{}, now: time.Now}
	c.changed = sync.NewCond(&c.mu)
	return c
}

// ListenAndServe runs one fake member on addr (host:port, which is also the name it
// answers to in the replica set config) until the listener fails. Members named in
// its config that it does not serve are other fake processes: it heartbeats them
// over the network (a private command, every ProbeInterval), so configs spread,
// elections follow what each process can reach (a real network cut partitions
// them), secondaries copy the primary's oplog and majority writes wait for their
// acknowledgement. That is enough for a lab stand-in; it is not mongod's protocol.
func ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mongofake: listen %s: %w", addr, err)
	}
	return Serve(ln, addr)
}

// Serve runs one fake member on ln, named host in replica set configs, until ln is
// closed.
func Serve(ln net.Listener, host string) error { return ServeWith(ln, host, Options{}) }

// Options tune a served member.
type Options struct {
	// Dial opens connections to peer members (net.Dialer when nil); tests cut
	// links between processes with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Users are SCRAM-SHA-256 users (name → password) to create, as the mongo
	// image does from MONGO_INITDB_ROOT_USERNAME/_PASSWORD; none: no authentication.
	Users map[string]string
	// StepDownAfter is how long a primary that lost its majority keeps acting as
	// one (see SetStepDownAfter); 0 steps down at once.
	StepDownAfter time.Duration
}

// ServeWith is Serve with options.
func ServeWith(ln net.Listener, host string, opts Options) error {
	c := newCluster()
	c.peers = true
	c.dial = opts.Dial
	c.stepDownAfter = opts.StepDownAfter
	for u, pw := range opts.Users {
		if err := c.AddUser(u, pw); err != nil {
			return err
		}
	}
	c.serve(ln, host)
	ctx, cancel := context.WithCancel(context.Background())
	go c.probeLoop(ctx)
	c.wg.Wait()
	cancel()
	return errors.New("mongofake: listener closed")
}

func (c *Cluster) serve(ln net.Listener, host string) {
	n := &node{host: host, ln: ln, started: c.now(), conns: map[net.Conn]bool{}}
	c.mu.Lock()
	c.nodes[host] = n
	c.order = append(c.order, host)
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				// The member is gone: so are its connections.
				c.mu.Lock()
				for conn := range n.conns {
					_ = conn.Close()
				}
				c.mu.Unlock()
				return
			}
			c.mu.Lock()
			if n.down || c.closed {
				c.mu.Unlock()
				_ = conn.Close()
				continue
			}
			n.conns[conn] = true
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.handleConn(n, conn)
				c.mu.Lock()
				delete(n.conns, conn)
				c.mu.Unlock()
				_ = conn.Close()
			}()
		}
	}()
}

// Hosts lists the members' host:port, in start order.
func (c *Cluster) Hosts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

// Close stops every member and waits for their connections to end.
func (c *Cluster) Close() {
	c.mu.Lock()
	c.closed = true
	for _, n := range c.nodes {
		_ = n.ln.Close()
		for conn := range n.conns {
			_ = conn.Close()
		}
	}
	c.changed.Broadcast()
	c.mu.Unlock()
	c.wg.Wait()
}

// SetClock replaces the clock used for oplog wall times and status dates.
func (c *Cluster) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// SetDown takes a member down (its connections are closed and new ones refused, as
// when mongod is stopped) or brings it back.
func (c *Cluster) SetDown(host string, down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[host]
	if n == nil {
		return
	}
	n.down = down
	if down {
		n.primary = false
		for conn := range n.conns {
			_ = conn.Close()
		}
	}
	c.recompute()
}

// Cut stops two members from reaching each other (a partition between them);
// clients still reach both.
func (c *Cluster) Cut(a, b string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cuts[pair(a, b)] = true
	c.recompute()
}

// Heal restores the link between two members; HealAll every link.
func (c *Cluster) Heal(a, b string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cuts, pair(a, b))
	c.recompute()
}

// HealAll restores every link.
func (c *Cluster) HealAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cuts = map[[2]string]bool{}
	c.recompute()
}

// SetStepDownAfter makes a primary that loses its majority keep acting as primary
// for d (mongod's election timeout is 10 s) before stepping down; 0 (the default)
// steps down at once. Writes it takes meanwhile without a majority are rolled back
// once it rejoins the new primary.
func (c *Cluster) SetStepDownAfter(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stepDownAfter = d
}

// kick re-settles the set (a timer fired).
func (c *Cluster) kick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.recompute()
	}
}

// Primaries returns every member acting as primary right now (two during the
// window after a cut-off primary lost its majority and before it stepped down).
func (c *Cluster) Primaries() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, h := range c.order {
		if n := c.nodes[h]; n.primary && !n.remote {
			out = append(out, h)
		}
	}
	return out
}

// Primary returns the member acting as primary ("" when none; the first one while
// a cut-off primary has not stepped down yet, see Primaries).
func (c *Cluster) Primary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.order {
		if c.nodes[h].primary {
			return h
		}
	}
	return ""
}

// RolledBack returns the documents the member at host rolled back (what MongoDB
// writes to rollback/ files), oldest first.
func (c *Cluster) RolledBack(host string) []bson.D {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []bson.D
	if n := c.nodes[host]; n != nil {
		for _, e := range n.rolledBack {
			out = append(out, e.O)
		}
	}
	return out
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}
