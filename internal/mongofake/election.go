package mongofake

import (
	"slices"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// reach reports whether members a and b can talk (both up, link not cut). Members
// this process does not run are down.
func (c *Cluster) reach(a, b string) bool {
	na, nb := c.nodes[a], c.nodes[b]
	if na == nil || nb == nil || na.down || nb.down || (na.remote && !na.probeOK) || (nb.remote && !nb.probeOK) {
		return false
	}
	return a == b || !c.cuts[pair(a, b)]
}

// recompute brings the replica set to what it would settle to: configs spread to
// the members that reach a holder of a newer one, members without a majority step
// down, the highest-priority member that can gather a majority is elected, and
// oplogs are copied from each primary. Called with c.mu held after every change.
func (c *Cluster) recompute() {
	defer c.changed.Broadcast()
	for range 3 {
		if !c.settle() {
			return
		}
	}
}

// settle is one pass of recompute; true when the primary cleared a newlyAdded flag
// (a new config version), so another pass is due.
func (c *Cluster) settle() bool {
	c.addRemotes()
	c.spreadConfigs()
	c.stepDownLost()
	c.elect()
	c.replicate()
	return c.clearNewlyAdded()
}

// spreadConfigs (step 1) spreads configs as heartbeats carry them: newer versions win; an
// uninitiated member named in a config joins.
func (c *Cluster) spreadConfigs() {
	for changed := true; changed; {
		changed = false
		for _, a := range c.order {
			for _, b := range c.order {
				na, nb := c.nodes[a], c.nodes[b]
				if a == b || nb.remote || !c.reach(a, b) || na.cfg == nil || na.cfg.member(a) == nil {
					continue
				}
				// A member named in a newer config adopts it; one left out of it
				// adopts it too and finds itself REMOVED.
				if (nb.cfg == nil && na.cfg.member(b) != nil) || (nb.cfg != nil && nb.cfg.ID == na.cfg.ID && nb.cfg.Version < na.cfg.Version) {
					fresh := nb.cfg == nil
					nb.cfg = na.cfg.clone()
					if fresh {
						c.startInitialSync(nb)
					}
					changed = true
				}
			}
		}
	}
}

// stepDownLost (step 2) steps down primaries that lost their majority, their place in the config,
// or meet a reachable electable member of higher priority.
func (c *Cluster) stepDownLost() {
	for _, h := range c.order {
		n := c.nodes[h]
		if !n.primary || n.remote {
			continue
		}
		me := n.self()
		switch {
		case n.down || me == nil || !me.electable() || c.higherPriorityReachable(h):
			n.primary, n.lostAt = false, time.Time{}
		case c.votesFor(h, nil) < n.cfg.majority():
			// Like mongod, a primary that lost its majority notices only after an
			// election timeout (StepDownAfter) and keeps taking writes until then:
			// those without a majority are rolled back after the heal.
			if c.stepDownAfter > 0 && n.lostAt.IsZero() {
				n.lostAt = time.Now()
				time.AfterFunc(c.stepDownAfter, c.kick)
			}
			if c.stepDownAfter == 0 || time.Since(n.lostAt) >= c.stepDownAfter {
				n.primary, n.lostAt = false, time.Time{}
			}
		default:
			n.lostAt = time.Time{}
		}
	}
}

// elect (step 3) elects: candidates by priority, then member id; each voter votes once.
func (c *Cluster) elect() {
	var cands []*node
	for _, h := range c.order {
		n := c.nodes[h]
		if me := n.self(); !n.remote && !n.down && !n.syncing && me != nil && me.electable() && !n.primary && !c.higherPriorityRemote(n) && !n.frozen() {
			cands = append(cands, n)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i].self(), cands[j].self()
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.ID < b.ID
	})
	for _, n := range cands {
		taken := map[string]bool{}
		for _, h := range c.order {
			if p := c.nodes[h]; p.primary {
				for _, o := range c.order {
					if c.reach(h, o) {
						taken[o] = true
					}
				}
			}
		}
		if taken[n.host] {
			continue
		}
		if c.votesFor(n.host, taken) >= n.cfg.majority() && !c.behind(n) {
			c.term++
			n.primary = true
		}
	}
}

// replicate (step 4) replicates from each primary along reachable, in-config, data-bearing members
// (chained replication), rolling back what diverged.
func (c *Cluster) replicate() {
	for _, h := range c.order {
		p := c.nodes[h]
		if !p.primary {
			continue
		}
		if p.remote {
			// Local members that reach a remote primary copy the oplog it sent.
			for _, o := range c.order {
				if n := c.nodes[o]; !n.remote && n.cfg != nil && p.cfg != nil && n.cfg.Version == p.cfg.Version && c.reach(o, h) && p.oplog != nil {
					if m := p.cfg.member(o); m != nil && !m.ArbiterOnly {
						c.syncFrom(n, p)
					}
				}
			}
			continue
		}
		synced := map[string]bool{h: true}
		queue := []string{h}
		for len(queue) > 0 {
			src := queue[0]
			queue = queue[1:]
			for _, o := range c.order {
				n := c.nodes[o]
				if synced[o] || n.remote || !c.reach(src, o) || n.cfg == nil || p.cfg.member(o) == nil || n.cfg.Version != p.cfg.Version {
					continue
				}
				synced[o] = true
				queue = append(queue, o)
				if m := p.cfg.member(o); m.ArbiterOnly {
					continue
				}
				if !n.syncDone() {
					continue // still in initial sync: its data arrives when the sync ends
				}
				n.syncing = false
				c.syncFrom(n, p)
			}
		}
	}
}

// clearNewlyAdded (step 5): a primary clears newlyAdded on members that caught up (a new config version).
func (c *Cluster) clearNewlyAdded() bool {
	cleared := false
	for _, h := range c.order {
		p := c.nodes[h]
		if !p.primary || p.remote {
			continue
		}
		for i, m := range p.cfg.Members {
			o := c.nodes[m.Host]
			if m.NewlyAdded && o != nil && c.reach(h, m.Host) && o.cfg != nil && o.cfg.Version == p.cfg.Version && !newer(p.lastOp(), o.lastOp()) {
				p.cfg.Members[i].NewlyAdded = false
				cleared = true
			}
		}
		if cleared {
			p.cfg.Version++
		}
	}
	return cleared
}

// addRemotes registers, in peer mode, every member a local config names that this
// process does not serve.
func (c *Cluster) addRemotes() {
	if !c.peers {
		return
	}
	for _, h := range slices.Clone(c.order) {
		n := c.nodes[h]
		if n.remote || n.cfg == nil {
			continue
		}
		for _, m := range n.cfg.Members {
			c.addRemote(m.Host)
		}
	}
}

func (c *Cluster) addRemote(host string) {
	if host == "" || c.nodes[host] != nil {
		return
	}
	c.nodes[host] = &node{host: host, remote: true}
	c.order = append(c.order, host)
}

// higherPriorityRemote reports whether n reaches a remote member that would win an
// election against it (that process elects itself; this one must not compete).
func (c *Cluster) higherPriorityRemote(n *node) bool {
	me := n.self()
	for _, m := range n.cfg.Members {
		o := c.nodes[m.Host]
		if o != nil && o.remote && !o.frozen() && m.electable() && m.Priority > me.Priority && c.reach(n.host, m.Host) && o.cfg != nil && o.cfg.Version == n.cfg.Version && !newer(n.lastOp(), o.lastOp()) {
			return true
		}
	}
	return false
}

// votesFor counts the votes of members of host's config that host reaches and that
// are not in taken.
func (c *Cluster) votesFor(host string, taken map[string]bool) int {
	n := c.nodes[host]
	v := 0
	for _, m := range n.cfg.Members {
		if m.voting() && c.reach(host, m.Host) && !taken[m.Host] {
			if o := c.nodes[m.Host]; o.cfg != nil && o.cfg.ID == n.cfg.ID {
				v += int(m.Votes)
			}
		}
	}
	return v
}

func (c *Cluster) higherPriorityReachable(host string) bool {
	n := c.nodes[host]
	me := n.self()
	for _, m := range n.cfg.Members {
		if m.Host != host && m.electable() && m.Priority > me.Priority && c.reach(host, m.Host) {
			if o := c.nodes[m.Host]; o.cfg != nil && o.cfg.Version == n.cfg.Version && !c.behind(o) && !o.frozen() {
				return true
			}
		}
	}
	return false
}

// behind reports whether a reachable voter has a newer last write than n (an
// election needs the candidate's oplog to be at least as recent as its voters').
func (c *Cluster) behind(n *node) bool {
	mine := n.lastOp()
	for _, h := range c.order {
		o := c.nodes[h]
		if h != n.host && c.reach(n.host, h) && newer(o.lastOp(), mine) {
			if m := n.cfg.member(h); m != nil && m.voting() && !m.ArbiterOnly {
				return true
			}
		}
	}
	return false
}

func newer(a, b oplogEntry) bool {
	if a.T != b.T {
		return a.T > b.T
	}
	return a.TS.After(b.TS)
}

// syncFrom makes n's oplog a copy of p's, rolling back n's entries p does not have.
func (c *Cluster) syncFrom(n, p *node) {
	// Fast path: n's oplog is a prefix of p's (the usual case): append the tail.
	if k := len(n.oplog); k <= len(p.oplog) && (k == 0 || (n.oplog[k-1].TS == p.oplog[k-1].TS && n.oplog[k-1].T == p.oplog[k-1].T)) {
		n.oplog = append(n.oplog, p.oplog[k:]...)
		return
	}
	common := 0
	for common < len(n.oplog) && common < len(p.oplog) && n.oplog[common].TS == p.oplog[common].TS && n.oplog[common].T == p.oplog[common].T {
		common++
	}
	if common < len(n.oplog) {
		n.rolledBack = append(n.rolledBack, n.oplog[common:]...)
	}
	n.oplog = append(n.oplog[:common:common], p.oplog[common:]...)
}

// nextTS returns a fresh oplog timestamp, after every write this process holds.
func (c *Cluster) nextTS() bson.Timestamp {
	for _, n := range c.nodes {
		if l := n.lastOp(); l.TS.After(c.ts) {
			c.ts = l.TS
		}
	}
	secs := uint32(c.now().Unix())
	if secs > c.ts.T {
		c.ts = bson.Timestamp{T: secs, I: 1}
	} else {
		c.ts.I++
	}
	return c.ts
}

// acks counts the voting data-bearing members of p's config holding entry ts.
func (c *Cluster) acks(p *node, ts bson.Timestamp) int {
	n := 0
	for _, m := range p.cfg.Members {
		if !m.voting() || m.ArbiterOnly {
			continue
		}
		o := c.nodes[m.Host]
		if o == nil || o.down {
			continue
		}
		if o.remote {
			if o.probeOK && !o.last.TS.IsZero() && !ts.After(o.last.TS) {
				n++
			}
			continue
		}
		for i := len(o.oplog) - 1; i >= 0; i-- {
			if o.oplog[i].TS == ts {
				n++
				break
			}
		}
	}
	return n
}
