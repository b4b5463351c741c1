package mongofake

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Initial sync, a wiped member and a record of reconfigs: what a site rebuild needs
// of the fake. Only documented MongoDB behaviour is modelled:
//
//   - A mongod started with an empty data directory whose host is in the set's
//     config receives the config from the other members and performs an initial
//     sync by itself ("Resync a Member of a Replica Set", automatic sync:
//     https://www.mongodb.com/docs/manual/tutorial/resync-replica-set-member/).
//   - During initial sync the member is in state STARTUP2 (5): not electable, holds
//     no data it can acknowledge, but it can vote ("Member states: STARTUP2 ... can
//     vote", https://www.mongodb.com/docs/manual/reference/replica-states/).
//   - replSetGetStatus on a member in STARTUP2 returns initialSyncStatus with
//     approxTotalDataSize, approxTotalBytesCopied, totalInitialSyncElapsedMillis and
//     remainingInitialSyncEstimatedMillis; once the sync ends they are no longer
//     returned (https://www.mongodb.com/docs/manual/reference/command/replSetGetStatus/,
//     since 4.4 / 4.2.1).
//   - The sync copies from a sync source; the fake copies from the primary only and
//     in one go when the sync's duration (SetInitialSync) has passed: real progress
//     is byte by byte and a secondary can be the source.

// SetInitialSync makes a member that joins the set with an empty data directory spend
// d in STARTUP2 before it copies the primary's data and becomes SECONDARY; 0 (the
// default) copies at once, as the fake always did.
func (c *Cluster) SetInitialSync(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initialSync = d
}

// Wipe takes the member down and deletes its data directory: no config, no oplog,
// nothing rolled back (a site lost for good). SetDown(host, false) then starts it
// again empty, as a new machine with the same address would be.
func (c *Cluster) Wipe(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[host]
	if n == nil {
		return
	}
	n.down, n.primary = true, false
	for conn := range n.conns {
		_ = conn.Close()
	}
	n.cfg, n.oplog, n.rolledBack = nil, nil, nil
	n.ids, n.idsLen, n.idsLast = nil, 0, bson.Timestamp{}
	n.syncing, n.syncStart, n.syncUntil = false, time.Time{}, time.Time{}
	n.frozenUntil = time.Time{}
	c.recompute()
}

// startInitialSync is called when an empty member adopts a config: with a sync
// duration set it stays in STARTUP2 until then.
func (c *Cluster) startInitialSync(n *node) {
	if c.initialSync <= 0 || n.remote || len(n.oplog) > 0 {
		return
	}
	if m := n.cfg.member(n.host); m == nil || m.ArbiterOnly {
		return
	}
	n.syncing, n.syncStart, n.syncUntil = true, time.Now(), time.Now().Add(c.initialSync)
	time.AfterFunc(c.initialSync, c.kick)
}

// syncDone reports whether a member in initial sync may copy its data now (its
// sync's time has passed); members not syncing always may.
func (n *node) syncDone() bool { return !n.syncing || !time.Now().Before(n.syncUntil) }

// initialSyncStatus is what replSetGetStatus on a member in STARTUP2 adds.
func (c *Cluster) initialSyncStatus(n *node) bson.D {
	total := int64(0)
	if p := c.nodes[c.primaryFor(n)]; p != nil {
		for _, e := range p.oplog {
			if e.Op == "i" {
				if raw, err := bson.Marshal(e.O); err == nil {
					total += int64(len(raw))
				}
			}
		}
	}
	elapsed := time.Since(n.syncStart)
	frac := min(float64(elapsed)/float64(max(c.initialSync, 1)), 1)
	return bson.D{
		{Key: "failedInitialSyncAttempts", Value: int32(0)},
		{Key: "initialSyncStart", Value: bson.NewDateTimeFromTime(n.syncStart)},
		{Key: "totalInitialSyncElapsedMillis", Value: elapsed.Milliseconds()},
		{Key: "remainingInitialSyncEstimatedMillis", Value: max(time.Until(n.syncUntil).Milliseconds(), 0)},
		{Key: "approxTotalDataSize", Value: total},
		{Key: "approxTotalBytesCopied", Value: int64(float64(total) * frac)},
	}
}

// Reconfig is one replSetReconfig the fake accepted: on which member, forced or
// not, and the members of the config it installed.
type Reconfig struct {
	On      string
	Force   bool
	Version int64
	Members []ReconfigMember
}

// ReconfigMember is one member of a recorded config.
type ReconfigMember struct {
	ID       int64
	Host     string
	Votes    int64
	Priority float64
	Hidden   bool
	Tags     map[string]string
}

func (c *Cluster) record(on string, force bool, cfg *rsConfig) {
	r := Reconfig{On: on, Force: force, Version: cfg.Version}
	for _, m := range cfg.Members {
		r.Members = append(r.Members, ReconfigMember{ID: m.ID, Host: m.Host, Votes: m.Votes, Priority: m.Priority, Hidden: m.Hidden, Tags: m.Tags})
	}
	c.reconfigs = append(c.reconfigs, r)
}

// Reconfigs returns every replSetReconfig accepted so far, oldest first.
func (c *Cluster) Reconfigs() []Reconfig {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Reconfig(nil), c.reconfigs...)
}
