package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// RebuildOptions tune the MongoDB part of a site rebuild.
type RebuildOptions struct {
	// Force rebuilds though the site's members still answer as healthy voting
	// members of the set.
	Force bool
	// AllowForcedReconfig acknowledges that, when no member sitectl reaches sees a
	// primary, the votes are changed by forced replSetReconfigs (the guarded path of
	// `mongo declare-authoritative`): writes a member took without a majority may be
	// rolled back. Without it such a step fails and changes nothing.
	AllowForcedReconfig bool
	// Wait is how long waiting for a member (its mongod up, its initial sync) may
	// make no progress before the step fails (default 2 minutes).
	Wait time.Duration
	// Progress receives live lines (key, text); nil: silent.
	Progress func(key, text string)
}

// Reconfig is one reconfig the rebuild made: which member, what changed, and how —
// "reconfig" (on the primary, a majority reachable) or "forced" (no primary
// reachable, the guarded path) — on which member.
type Reconfig struct {
	Member string   `json:"member"`
	Change []string `json:"change"`
	Path   string   `json:"path"`
	On     string   `json:"on"`
}

// Paths of a reconfig.
const (
	PathReconfig = "reconfig"
	PathForced   = "forced"
)

// Rebuild is the MongoDB part of `sitectl site rebuild S`: S's members lose their
// votes (votes 0, priority 0) one reconfig at a time; once S's mongod is back empty
// its members are re-added (they initial-sync), waited for until SECONDARY and caught
// up, then get their configured votes and priority back, one reconfig at a time. No
// member of another site is ever changed or removed. Every step re-reads the live
// set, so re-running after a stop resumes.
type Rebuild struct {
	Site    string   `json:"site"`
	Members []string `json:"members"`
	// Majority says whether a primary was reachable when planned: the reconfigs
	// then run on it; otherwise they are forced (guarded).
	Majority bool `json:"majority_reachable"`
	// Answered lists the site's members that answered as healthy voting members
	// when planned (only with Force).
	Answered  []string   `json:"answered,omitempty"`
	Reconfigs []Reconfig `json:"reconfigs"`
	// Kept lists the members whose vote removal was skipped, and why (keepVote).
	Kept  []KeptVote  `json:"votes_kept,omitempty"`
	Steps []plan.Step `json:"-"`

	mu   sync.Mutex
	topo *sites.Topology
	conn *Conn
	opts RebuildOptions
}

// KeptVote is a vote removal the rebuild skipped: the member's mongod was back when
// the step ran (see keepVote).
type KeptVote struct {
	Member string `json:"member"`
	Reason string `json:"reason"`
}

// ErrSiteAnswers is returned when the site's members still answer as healthy voting
// members: the site is not lost (or MongoDB already resynced it).
var ErrSiteAnswers = errors.New("its members still answer")

// PlanRebuild reads the live set and plans the rebuild of site's MongoDB part.
func (c *Conn) PlanRebuild(ctx context.Context, site string, opts RebuildOptions) (*Rebuild, error) {
	s := c.topo.Site(site)
	if s == nil {
		return nil, fmt.Errorf("mongo rebuild: no site %q in the configuration", site)
	}
	if !s.HasStack("mongo") || len(s.Mongo.Members) == 0 {
		return nil, fmt.Errorf("mongo rebuild %s: the site runs no MongoDB members (stacks and mongo.members in its config); leave out --mongo", site)
	}
	if opts.Wait <= 0 {
		opts.Wait = 2 * time.Minute
	}
	desired, err := Build(c.topo)
	if err != nil {
		return nil, err
	}
	live, err := c.ReadLive(ctx)
	if err != nil {
		return nil, fmt.Errorf("mongo rebuild %s: %w", site, err)
	}
	if !live.Initiated || live.Config == nil {
		return nil, fmt.Errorf("mongo rebuild %s: no member that answers is part of an initiated replica set; there is nothing to rebuild from (sitectl deploy initiates a new set)", site)
	}
	r := &Rebuild{Site: site, Majority: live.Primary != "", topo: c.topo, conn: c, opts: opts, Reconfigs: []Reconfig{}}
	for _, m := range s.Mongo.Members {
		r.Members = append(r.Members, m.Host)
	}
	if answered := healthyVoters(live, r.Members); len(answered) > 0 {
		if !opts.Force {
			return nil, fmt.Errorf("mongo rebuild %s: %w as healthy voting members of %s: %s; the site is not lost, or MongoDB has already resynced its rebuilt members (an empty mongod still in the config initial-syncs by itself) and there is nothing to rebuild; --force runs the steps anyway (votes removed, then restored)",
				site, ErrSiteAnswers, live.Config.Name, strings.Join(answered, "; "))
		}
		r.Answered = answered
	}
	r.plan(desired, live)
	return r, nil
}

// healthyVoters lists the hosts that answer as PRIMARY or SECONDARY of the set and
// still hold a vote or a priority in its config, with what they said.
func healthyVoters(live *Live, hosts []string) []string {
	var out []string
	for _, v := range live.Members {
		if !slices.Contains(hosts, v.Host) || !v.Reachable || v.SetName != live.Config.Name || (!v.Primary && !v.Secondary) {
			continue
		}
		m := live.Config.Member(v.Host)
		if m == nil || (m.Votes == 0 && m.Priority == 0) {
			continue
		}
		state := "SECONDARY"
		if v.Primary {
			state = "PRIMARY"
		}
		out = append(out, fmt.Sprintf("%s answers as %s (config version %d, votes %d)", v.Host, state, v.SetVersion, m.Votes))
	}
	return out
}

// plan builds the steps: votes removed, then per member the re-add with its initial
// sync, then the votes restored.
func (r *Rebuild) plan(desired *Config, live *Live) {
	how := fmt.Sprintf("one replSetReconfig on the primary %s (a majority is reachable)", live.Primary)
	if live.Primary == "" {
		how = "no member reaches a primary: one FORCED replSetReconfig on a surviving member (guarded as `mongo declare-authoritative`: needs --i-understand-rollback; a normal reconfig if a primary is back when applied)"
	}
	for _, h := range r.Members {
		cur := live.Config.Member(h)
		if cur == nil || (cur.Votes == 0 && cur.Priority == 0) {
			continue
		}
		to := *cur
		to.Votes, to.Priority = 0, 0
		r.step(plan.Update, "votes of member "+h, memberDiff(*cur, to), how+"; waits until the new config is committed",
			Change{Kind: KindUpdate, Site: r.Site, Member: to, Voting: cur.Voting()})
	}
	for _, h := range r.Members {
		want := *desired.Member(h)
		note := "its mongod must be back, empty: it receives the config and initial-syncs; waits until SECONDARY with its optime caught up (progress on stderr)"
		if live.Config.Member(h) == nil {
			note = "added with votes 0, priority 0 (" + how + "); " + note
		}
		add := want
		add.Votes, add.Priority = 0, 0
		r.Steps = append(r.Steps, plan.Step{Site: r.Site, Component: ComponentMongo, Action: plan.Create, Name: "initial sync of member " + h, Note: note,
			Apply: func(ctx context.Context) error {
				return r.resync(ctx, Change{Kind: KindAdd, Site: r.Site, Member: add, Voting: false})
			}})
		from := live.Config.Member(h)
		if from == nil {
			from = &add
		}
		zero := *from
		zero.Votes, zero.Priority = 0, 0
		if d := memberDiff(zero, want); len(d) > 0 {
			r.step(plan.Update, "votes of member "+h, d, how+" (at most one voting member added per reconfig); waits until committed and the member caught up",
				Change{Kind: KindUpdate, Site: r.Site, Member: want, Voting: want.Voting()})
		}
	}
}

func (r *Rebuild) step(action plan.Action, name string, diff []string, note string, ch Change) {
	r.Steps = append(r.Steps, plan.Step{Site: r.Site, Component: ComponentMongo, Action: action, Name: name, Diff: diff, Note: note,
		Apply: func(ctx context.Context) error {
			if err := r.reconfigure(ctx, ch); err != nil {
				return err
			}
			if ch.Member.Voting() {
				return r.waitCaughtUp(ctx, ch.Member.Host)
			}
			return nil
		}})
}

// resync adds the member when the config lacks it (non-voting), waits for its mongod
// to answer as a member of the set, and, while a primary is reachable, for its
// initial sync to end and its optime to catch up. Without a primary there is no one
// to sync from: the vote step that follows restores its vote (forced) and waits.
func (r *Rebuild) resync(ctx context.Context, add Change) error {
	host := add.Member.Host
	if err := r.waitAnswers(ctx, host); err != nil {
		return err
	}
	if err := r.reconfigure(ctx, add); err != nil {
		return err
	}
	live, err := r.conn.ReadLive(ctx)
	if err != nil {
		return err
	}
	if live.Primary == "" {
		r.say(host, "no primary reachable: it initial-syncs once the next step restores its vote")
		return nil
	}
	return r.waitCaughtUp(ctx, host)
}

// needed reports whether ch still changes cfg.
func needed(ch Change, cfg *Config) bool {
	cur := cfg.Member(ch.Member.Host)
	switch ch.Kind {
	case KindAdd:
		return cur == nil
	case KindUpdate:
		return cur != nil && len(memberDiff(*cur, ch.Member)) > 0
	}
	return false
}

// reconfigure makes one member change: on the primary when one is reachable
// (Conn.Apply: one reconfig, committed), else by the guarded forced path. Nothing
// happens when the live config already has it.
func (r *Rebuild) reconfigure(ctx context.Context, ch Change) error {
	live, err := r.conn.ReadLive(ctx)
	if err != nil {
		return err
	}
	if live.Config == nil {
		return fmt.Errorf("mongo rebuild %s: no member answers with the set's config", r.Site)
	}
	if !needed(ch, live.Config) {
		return nil
	}
	diff := describe(ch.Member)
	if cur := live.Config.Member(ch.Member.Host); cur != nil {
		diff = memberDiff(*cur, ch.Member)
	}
	if live.Primary != "" {
		why, err := r.keepVote(ctx, live, ch)
		if err != nil {
			return err
		}
		if why != "" {
			r.mu.Lock()
			r.Kept = append(r.Kept, KeptVote{Member: ch.Member.Host, Reason: why})
			r.mu.Unlock()
			r.say(ch.Member.Host, "vote kept: "+why)
			return nil
		}
		if err := r.conn.Apply(ctx, ch); err != nil {
			return err
		}
		r.record(Reconfig{Member: ch.Member.Host, Change: diff, Path: PathReconfig, On: live.Primary})
		return nil
	}
	on, err := r.forced(ctx, live, ch)
	if err != nil {
		return err
	}
	r.record(Reconfig{Member: ch.Member.Host, Change: diff, Path: PathForced, On: on})
	return nil
}

func (r *Rebuild) record(rc Reconfig) {
	r.mu.Lock()
	r.Reconfigs = append(r.Reconfigs, rc)
	r.mu.Unlock()
	r.say(rc.Member, fmt.Sprintf("%s on %s: %s", rc.Path, rc.On, strings.Join(rc.Change, ", ")))
}

func (r *Rebuild) say(host, text string) {
	if r.opts.Progress != nil {
		r.opts.Progress("mongo "+host, fmt.Sprintf("%s mongo member %s: %s", r.Site, host, text))
	}
}

// forced applies ch by a forced replSetReconfig on a surviving member: the guard of
// `mongo declare-authoritative` (no member sitectl reaches is or sees a primary, and
// the operator acknowledged the rollback), but keeping every member: only ch's
// member changes. It returns the member it ran on.
func (r *Rebuild) forced(ctx context.Context, live *Live, ch Change) (string, error) {
	var answered, silent []string
	on, best := "", int64(-1)
	for _, v := range live.Members {
		if !v.Reachable {
			silent = append(silent, v.Host)
			continue
		}
		answered = append(answered, v.Host)
		if v.SeesPrimary != "" {
			return "", fmt.Errorf("mongo rebuild %s: %s sees the primary %s, which sitectl does not reach: not forcing a reconfig while a primary runs (its writes would be rolled back); make sitectl reach it, or wait until it steps down", r.Site, v.Host, v.SeesPrimary)
		}
		if v.SetName != "" && SiteOf(r.topo, v.Host) != r.Site && v.SetVersion > best {
			on, best = v.Host, v.SetVersion
		}
	}
	if !r.opts.AllowForcedReconfig {
		return "", fmt.Errorf("mongo rebuild %s: no member sitectl reaches is or sees a primary (answered: %s; not answering: %s): changing member %s needs a forced replSetReconfig, the guarded path of `sitectl mongo declare-authoritative` — writes a member took without a majority may be rolled back (not merged); re-run with --i-understand-rollback",
			r.Site, dash(strings.Join(answered, ", ")), dash(strings.Join(silent, ", ")), ch.Member.Host)
	}
	if on == "" {
		return "", fmt.Errorf("mongo rebuild %s: no member of another site answers as part of the set: nothing to force a reconfig on", r.Site)
	}
	cfg, err := r.conn.GetConfig(ctx, on)
	if err != nil {
		return "", fmt.Errorf("read the config on %s: %w", on, err)
	}
	next := cfg.Clone()
	if !ch.mutate(next) {
		return on, nil
	}
	next.Version++
	next.Term = 0
	fp := &ForcePlan{Site: r.Site, On: on, Keep: hostsOf(next), cfg: next, conn: r.conn}
	if err := fp.Apply(ctx); err != nil {
		return "", err
	}
	return on, nil
}

func hostsOf(cfg *Config) []string {
	out := make([]string, 0, len(cfg.Members))
	for _, m := range cfg.Members {
		out = append(out, m.Host)
	}
	return out
}

// keepVote says why a vote removal must not be made ("" when it may). The removal
// spares the survivors a vote that cannot be cast while the member is gone; the
// drill (and an operator who redeploys first) brings the member's mongod back, empty,
// before the steps run, and MongoDB resyncs it by itself. Then:
//   - it answers as PRIMARY or SECONDARY: its initial sync is over; removing its
//     vote would only step it down (a primary) and bring it back (unless Force);
//   - it is in initial sync (STARTUP2 votes) and without its vote the primary would
//     not reach a majority of the new config's voters — the hub with hub-and-spoke
//     tunnels, where a spoke was elected with the returned hub's vote. MongoDB
//     refuses that reconfig (its quorum check, NodeNotFound); made anyway, the
//     primary would step down and no one could be elected.
//
// The vote step that restores the vote then has nothing to do.
func (r *Rebuild) keepVote(ctx context.Context, live *Live, ch Change) (string, error) {
	cur := live.Config.Member(ch.Member.Host)
	if ch.Kind != KindUpdate || cur == nil || !cur.Voting() || ch.Member.Voting() {
		return "", nil
	}
	var st statusReply
	if err := r.conn.Run(ctx, live.Primary, bson.D{{Key: "replSetGetStatus", Value: 1}}, &st); err != nil {
		return "", fmt.Errorf("replSetGetStatus on %s: %w", live.Primary, err)
	}
	healthy := map[string]bool{}
	state := ""
	for _, m := range st.Members {
		healthy[m.Name] = m.Health == 1
		if m.Name == ch.Member.Host {
			state = m.StateStr
		}
	}
	if !healthy[ch.Member.Host] {
		return "", nil
	}
	// The primary's view lags the member's loss by up to a heartbeat round (it
	// still reports the member healthy just after its mongod went away): back
	// means the member itself answers too.
	if v := r.conn.Hello(ctx, ch.Member.Host); !v.Reachable {
		return "", nil
	}
	if (state == "PRIMARY" || state == "SECONDARY") && !r.opts.Force {
		return fmt.Sprintf("its mongod is back and answers as %s (config version %d): MongoDB has resynced it already", state, live.Config.Version), nil
	}
	next := live.Config.Clone()
	ch.mutate(next)
	total, reached := 0, 0
	for _, m := range next.Members {
		total += m.Votes
		if healthy[m.Host] {
			reached += m.Votes
		}
	}
	if reached > total/2 {
		return "", nil
	}
	return fmt.Sprintf("its mongod is back (%s) and the primary %s needs its vote: without it the primary would reach %d of the new config's %d votes, no majority (MongoDB refuses that reconfig); it initial-syncs voting", state, live.Primary, reached, total), nil
}
