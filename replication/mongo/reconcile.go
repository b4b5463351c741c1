package mongo

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/sites"
)

// ChangeKind is what one reconcile change does.
type ChangeKind string

// Change kinds. Every member change is one replSetReconfig, so a reconfig never
// adds or removes more than one voting member.
const (
	KindInitiate     ChangeKind = "initiate"
	KindWriteConcern ChangeKind = "default-write-concern"
	KindAdd          ChangeKind = "add"
	KindUpdate       ChangeKind = "update"
	KindRemove       ChangeKind = "remove"
)

// Change is one step from the live replica set towards the desired one.
type Change struct {
	Kind ChangeKind `json:"kind"`
	Site string     `json:"site"`
	// Member is the desired member (add, update) or the live one (remove).
	Member Member `json:"member,omitzero"`
	// Members are the initial members (initiate).
	Members []Member `json:"members,omitempty"`
	// Voting is true when the change adds or removes a vote.
	Voting bool     `json:"voting"`
	Diff   []string `json:"diff,omitempty"`
	Note   string   `json:"note,omitempty"`
}

// Changes computes, for one site, the steps from live to desired: the initiating
// site initiates a new set with its own members and sets the default write concern
// to majority; every site then adds, updates and removes its own members, one member
// (so at most one voting change) per reconfig, removals first. live may be nil when
// no member answers yet (first deploy): the steps are then those of a new set.
func Changes(topo *sites.Topology, desired *Config, live *Live, site string) []Change {
	initiator := Initiator(topo)
	var out []Change
	mine := func(m Member) bool { return SiteOfMember(topo, m) == site }
	owned := func(m Member) bool { // live members this site answers for
		s := SiteOfMember(topo, m)
		return s == site || (s == "" || topo.Site(s) == nil) && site == initiator
	}
	if live == nil || !live.Initiated {
		for _, m := range desired.Members {
			if !mine(m) {
				continue
			}
			if site == initiator {
				continue
			}
			out = append(out, Change{Kind: KindAdd, Site: site, Member: m, Voting: m.Voting(), Diff: describe(m),
				Note: fmt.Sprintf("added once %s's deploy has initiated the replica set", initiator)})
		}
		if site == initiator {
			var ms []Member
			for _, m := range desired.Members {
				if mine(m) {
					m.ID = len(ms)
					ms = append(ms, m)
				}
			}
			init := Change{Kind: KindInitiate, Site: site, Members: ms, Voting: true,
				Note: "other sites add their members one voting change at a time"}
			for _, m := range ms {
				init.Diff = append(init.Diff, m.Host+": "+strings.Join(describe(m), ", "))
			}
			out = append([]Change{init, {Kind: KindWriteConcern, Site: site, Diff: []string{"w: implicit → majority"},
				Note: "an acknowledged write then survives any single site's loss"}}, out...)
		}
		return out
	}
	if site == initiator && !live.MajorityDefault() {
		out = append(out, Change{Kind: KindWriteConcern, Site: site,
			Diff: []string{fmt.Sprintf("w: %s (%s) → majority", live.DefaultWC, live.DefaultWCSource)}})
	}
	var removes, updates, adds []Change
	for _, m := range live.Config.Members {
		if owned(m) && desired.Member(m.Host) == nil {
			removes = append(removes, Change{Kind: KindRemove, Site: site, Member: m, Voting: m.Voting(), Diff: describe(m)})
		}
	}
	// Non-voting removals first: they never touch the majority.
	slices.SortStableFunc(removes, func(a, b Change) int { return boolCmp(a.Voting, b.Voting) })
	for _, m := range desired.Members {
		if !mine(m) {
			continue
		}
		cur := live.Config.Member(m.Host)
		if cur == nil {
			adds = append(adds, Change{Kind: KindAdd, Site: site, Member: m, Voting: m.Voting(), Diff: describe(m)})
			continue
		}
		if d := memberDiff(*cur, m); len(d) > 0 {
			m.ID = cur.ID
			updates = append(updates, Change{Kind: KindUpdate, Site: site, Member: m, Voting: cur.Voting() != m.Voting(), Diff: d})
		}
	}
	for i := range removes {
		removes[i].noteDemotion(live.Primary)
	}
	for i := range updates {
		updates[i].noteDemotion(live.Primary)
	}
	out = append(out, removes...)
	out = append(out, updates...)
	return append(out, adds...)
}

func (ch *Change) noteDemotion(primary string) {
	if ch.demotes(primary) {
		ch.Note = "this member is the primary: it is stepped down first (replSetStepDown) and the change is made on the new primary"
	}
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func describe(m Member) []string {
	d := []string{fmt.Sprintf("votes %d", m.Votes), fmt.Sprintf("priority %g", m.Priority)}
	if m.ArbiterOnly {
		d = append(d, "arbiter")
	}
	if m.Hidden {
		d = append(d, "hidden")
	}
	if m.SecondaryDelaySecs > 0 {
		d = append(d, fmt.Sprintf("delay %ds", m.SecondaryDelaySecs))
	}
	if len(m.Tags) > 0 {
		d = append(d, "tags "+tagString(m.Tags))
	}
	return d
}

func tagString(t map[string]string) string {
	if len(t) == 0 {
		return "{}"
	}
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(t)) {
		parts = append(parts, k+"="+t[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// memberDiff lists what differs between a live member and the desired one.
func memberDiff(cur, want Member) []string {
	var d []string
	if cur.Votes != want.Votes {
		d = append(d, fmt.Sprintf("votes: %d → %d", cur.Votes, want.Votes))
	}
	if cur.Priority != want.Priority {
		d = append(d, fmt.Sprintf("priority: %g → %g", cur.Priority, want.Priority))
	}
	if cur.Hidden != want.Hidden {
		d = append(d, fmt.Sprintf("hidden: %t → %t", cur.Hidden, want.Hidden))
	}
	if cur.SecondaryDelaySecs != want.SecondaryDelaySecs {
		d = append(d, fmt.Sprintf("secondaryDelaySecs: %d → %d", cur.SecondaryDelaySecs, want.SecondaryDelaySecs))
	}
	if cur.ArbiterOnly != want.ArbiterOnly {
		d = append(d, fmt.Sprintf("arbiterOnly: %t → %t (MongoDB cannot change this in place: remove the member, then add it)", cur.ArbiterOnly, want.ArbiterOnly))
	}
	if !maps.Equal(cur.Tags, want.Tags) && (len(cur.Tags) != 0 || len(want.Tags) != 0) {
		d = append(d, fmt.Sprintf("tags: %s → %s", tagString(cur.Tags), tagString(want.Tags)))
	}
	return d
}

// demotes reports whether the change removes primary, or leaves it unelectable.
func (ch Change) demotes(primary string) bool {
	if primary == "" || ch.Member.Host != primary {
		return false
	}
	return ch.Kind == KindRemove || (ch.Kind == KindUpdate && !ch.Member.Electable())
}

// mutate applies one member change to a config copy; false when nothing changes.
func (ch Change) mutate(cfg *Config) bool {
	switch ch.Kind {
	case KindAdd:
		if cfg.Member(ch.Member.Host) != nil {
			return false
		}
		m := ch.Member
		m.ID = 0
		for _, o := range cfg.Members {
			m.ID = max(m.ID, o.ID+1)
		}
		cfg.Members = append(cfg.Members, m)
	case KindUpdate:
		cur := cfg.Member(ch.Member.Host)
		if cur == nil || len(memberDiff(*cur, ch.Member)) == 0 {
			return false
		}
		cur.Votes, cur.Priority, cur.Hidden, cur.SecondaryDelaySecs, cur.Tags = ch.Member.Votes, ch.Member.Priority, ch.Member.Hidden, ch.Member.SecondaryDelaySecs, maps.Clone(ch.Member.Tags)
	case KindRemove:
		i := slices.IndexFunc(cfg.Members, func(m Member) bool { return m.Host == ch.Member.Host })
		if i < 0 {
			return false
		}
		cfg.Members = slices.Delete(cfg.Members, i, i+1)
	default:
		return false
	}
	return true
}

// Retry settings for applying changes while other sites reconfigure too.
var (
	applyTimeout = 2 * time.Minute
	retryEvery   = 500 * time.Millisecond
)

// Apply makes one change against the live replica set. It re-reads the live state
// first, so it is idempotent and safe while other sites' deploys reconfigure the set
// at the same time: a reconfig that races another is retried on the new config.
func (c *Conn) Apply(ctx context.Context, ch Change) error {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	var last error
	for {
		done, err := c.applyOnce(ctx, ch)
		if done && err == nil {
			return nil
		}
		if err != nil && !retryable(err) {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("mongo %s %s: gave up after %s: %w", ch.Kind, ch.target(), applyTimeout, last)
		case <-time.After(retryEvery):
		}
	}
}

func (ch Change) target() string {
	if ch.Kind == KindInitiate || ch.Kind == KindWriteConcern {
		return ch.Site
	}
	return ch.Member.Host
}

type waitErr struct{ msg string }

func (e *waitErr) Error() string { return e.msg }

func retryable(err error) bool {
	if _, ok := err.(*waitErr); ok {
		return true
	}
	switch ServerCode(err) {
	case CodeNotWritablePrimary, CodeConfigurationInProgress, CodeNewConfigIncompatible, CodeCurrentConfigNotCommittedYet, CodeNotYetInitialized, CodeInterruptedDueToReplChange, CodePrimarySteppedDown:
		return true
	}
	return false
}

func (c *Conn) applyOnce(ctx context.Context, ch Change) (bool, error) {
	live, err := c.ReadLive(ctx)
	if err != nil {
		return false, &waitErr{err.Error()}
	}
	if ch.Kind == KindInitiate {
		if live.Initiated {
			return true, nil
		}
		cfg := bson.D{{Key: "_id", Value: c.setName()}, {Key: "version", Value: 1}, {Key: "members", Value: ch.Members}}
		host := ch.Members[0].Host
		if err := c.Run(ctx, host, bson.D{{Key: "replSetInitiate", Value: cfg}}, nil); err != nil {
			return false, fmt.Errorf("replSetInitiate on %s: %w", host, err)
		}
		return true, nil
	}
	if !live.Initiated || live.Primary == "" {
		return false, &waitErr{"the replica set has no primary yet"}
	}
	// setDefaultRWConcern majority comes before any reconfig.
	if !live.MajorityDefault() {
		if err := c.SetMajorityDefault(ctx, live.Primary); err != nil {
			return false, fmt.Errorf("setDefaultRWConcern majority on %s: %w", live.Primary, err)
		}
	}
	if ch.Kind == KindWriteConcern {
		return true, nil
	}
	if ch.demotes(live.Primary) {
		// mongod refuses to make the primary unelectable (or remove it): step it down
		// first; the change is applied on the next primary. The step-down closes the
		// primary's connections, so its error tells nothing.
		_ = c.Run(ctx, live.Primary, bson.D{{Key: "replSetStepDown", Value: 60}}, nil)
		return false, &waitErr{fmt.Sprintf("stepped %s down for this change; waiting for a new primary", live.Primary)}
	}
	cfg := live.Config.Clone()
	if !ch.mutate(cfg) {
		return true, c.waitCommitted(ctx, live.Primary)
	}
	cfg.Version++
	cfg.Term = 0
	if err := c.Run(ctx, live.Primary, bson.D{{Key: "replSetReconfig", Value: cfg}}, nil); err != nil {
		return false, fmt.Errorf("replSetReconfig on %s (%s %s): %w", live.Primary, ch.Kind, ch.Member.Host, err)
	}
	if err := c.waitCommitted(ctx, live.Primary); err != nil {
		return true, err
	}
	if ch.Kind == KindAdd {
		// Like MongoDB's own procedure: the next member is added once this one has
		// caught up (SECONDARY), so a lagging newcomer never holds a vote it cannot use.
		return true, c.waitMemberUp(ctx, live.Primary, ch.Member.Host)
	}
	return true, nil
}

// waitMemberUp waits until the primary reports host as SECONDARY (or ARBITER).
func (c *Conn) waitMemberUp(ctx context.Context, primary, host string) error {
	for {
		var rs statusReply
		if err := c.Run(ctx, primary, bson.D{{Key: "replSetGetStatus", Value: 1}}, &rs); err != nil {
			return err
		}
		for _, m := range rs.Members {
			if m.Name == host && (m.StateStr == "SECONDARY" || m.StateStr == "ARBITER" || m.StateStr == "PRIMARY") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return &waitErr{fmt.Sprintf("member %s has not reached SECONDARY yet (is its mongod up and reachable from the primary?)", host)}
		case <-time.After(retryEvery / 2):
		}
	}
}

// waitCommitted waits until the primary's config is committed to a majority.
func (c *Conn) waitCommitted(ctx context.Context, primary string) error {
	for {
		ok, err := c.Committed(ctx, primary)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return &waitErr{"the new config is not committed to a majority of voting members yet (are they reachable?)"}
		case <-time.After(retryEvery / 2):
		}
	}
}

func (c *Conn) setName() string { return setName(c.topo) }

// setName is the replica set's name: the first mongo site's.
func setName(topo *sites.Topology) string {
	for _, s := range topo.Sites {
		if s.HasStack("mongo") && s.Mongo.ReplicaSet != "" {
			return s.Mongo.ReplicaSet
		}
	}
	return ""
}
