package mongo

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/internal/mongofake"
	"github.com/sitectl/sitectl/plan"
)

// The rebuild tests stop a member and delete its data (mongofake.Wipe), which the
// tests cannot do to real mongod members named by SITECTL_TEST_MONGO_URI: they run
// against the wire-protocol fake only.

// progressLog collects the rebuild's progress lines.
type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *progressLog) add(_, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, text)
}

func (p *progressLog) has(sub string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.lines, func(l string) bool { return strings.Contains(l, sub) })
}

// fakeMembers is the live config's members as the fake records them.
func fakeMembers(t *testing.T, c *Conn) []mongofake.ReconfigMember {
	t.Helper()
	live, err := c.ReadLive(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []mongofake.ReconfigMember
	for _, m := range live.Config.Members {
		out = append(out, mongofake.ReconfigMember{ID: int64(m.ID), Host: m.Host, Votes: int64(m.Votes), Priority: m.Priority, Hidden: m.Hidden, Tags: m.Tags})
	}
	return out
}

func sameMember(a, b mongofake.ReconfigMember) bool {
	return a.ID == b.ID && a.Host == b.Host && a.Votes == b.Votes && a.Priority == b.Priority && a.Hidden == b.Hidden && maps.Equal(a.Tags, b.Tags)
}

// checkOneVoteAtATime checks that each reconfig, from orig on, keeps every member
// (none removed, none added), changes exactly one member, that member's votes, and
// that member is one of lost; forced says whether each was forced.
func checkOneVoteAtATime(t *testing.T, orig []mongofake.ReconfigMember, rcs []mongofake.Reconfig, lost []string, forced bool) {
	t.Helper()
	prev := orig
	for i, rc := range rcs {
		if rc.Force != forced {
			t.Errorf("reconfig %d on %s: forced %t, want %t", i, rc.On, rc.Force, forced)
		}
		if len(rc.Members) != len(prev) {
			t.Fatalf("reconfig %d: %d members, before %d (a member was added or removed)", i, len(rc.Members), len(prev))
		}
		var changed []string
		for j, m := range rc.Members {
			if m.Host != prev[j].Host || m.ID != prev[j].ID {
				t.Fatalf("reconfig %d: member %d is %s/%d, was %s/%d", i, j, m.Host, m.ID, prev[j].Host, prev[j].ID)
			}
			if !sameMember(m, prev[j]) {
				changed = append(changed, m.Host)
				if m.Votes == prev[j].Votes {
					t.Errorf("reconfig %d changed %s without changing its votes: %+v → %+v", i, m.Host, prev[j], m)
				}
			}
		}
		if len(changed) != 1 || !slices.Contains(lost, changed[0]) {
			t.Errorf("reconfig %d changed %v; want exactly one member of the lost site %v", i, changed, lost)
		}
		prev = rc.Members
	}
}

func applyAll(ctx context.Context, t *testing.T, r *Rebuild) {
	t.Helper()
	for _, st := range r.Steps {
		if err := st.Apply(ctx); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
}

func stepNames(r *Rebuild) []string {
	var out []string
	for _, st := range r.Steps {
		out = append(out, st.String())
	}
	return out
}

// holds reports whether host holds the document with that _id (read on the member
// itself, as a secondary).
func holds(ctx context.Context, t *testing.T, c *Conn, host, id string) bool {
	t.Helper()
	cl, err := c.client(host)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := cl.Database("drill").Collection("rows").Find(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		t.Fatalf("find on %s: %v", host, err)
	}
	var docs []bson.D
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	return len(docs) == 1
}

// TestRebuildSpokeMajorityReachable: 1-1-1, douala lost, the hub and yaounde keep a
// majority: douala's vote is removed by a normal reconfig on the primary (never
// forced, though allowed), the rebuilt empty member initial-syncs and gets its vote
// back; the run is stopped after the first step and resumed by a new plan.
func TestRebuildSpokeMajorityReachable(t *testing.T) {
	t.Parallel()
	b, _, c := deployedSet(t)
	ctx := context.Background()
	douala := b.hosts[1]
	if err := insertMajority(ctx, c, b.hosts[0], bson.D{{Key: "_id", Value: "before"}}); err != nil {
		t.Fatal(err)
	}
	orig := fakeMembers(t, c)

	// Its member still answers: refused, naming it.
	if _, err := c.PlanRebuild(ctx, "douala", RebuildOptions{}); !errors.Is(err, ErrSiteAnswers) || !strings.Contains(err.Error(), douala+" answers as SECONDARY") {
		t.Fatalf("rebuild of a healthy site: %v, want ErrSiteAnswers naming %s", err, douala)
	}
	if _, err := c.PlanRebuild(ctx, "atlantis", RebuildOptions{}); err == nil {
		t.Error("rebuild of an unknown site: no error")
	}

	b.fake.Wipe(douala)
	n0 := len(b.fake.Reconfigs())
	log := &progressLog{}
	opts := RebuildOptions{AllowForcedReconfig: true, Wait: 15 * time.Second, Progress: log.add}
	r, err := c.PlanRebuild(ctx, "douala", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"~ mongo votes of member " + douala, "+ mongo initial sync of member " + douala, "~ mongo votes of member " + douala}
	if got := stepNames(r); !slices.Equal(got, want) || !r.Majority {
		t.Fatalf("steps %q (majority %t), want %q with a majority", got, r.Majority, want)
	}
	if !strings.Contains(r.Steps[0].Note, "on the primary "+b.hosts[0]) || !slices.Equal(r.Steps[0].Diff, []string{"votes: 1 → 0", "priority: 1 → 0"}) {
		t.Errorf("first step: diff %q note %q", r.Steps[0].Diff, r.Steps[0].Note)
	}
	if err := r.Steps[0].Apply(ctx); err != nil {
		t.Fatal(err)
	}

	// Stopped here; a new run resumes: the vote is gone already.
	r2, err := c.PlanRebuild(ctx, "douala", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := stepNames(r2); !slices.Equal(got, want[1:]) {
		t.Fatalf("resumed steps %q, want %q", got, want[1:])
	}
	b.fake.SetInitialSync(2 * time.Second)
	b.fake.SetDown(douala, false)
	applyAll(ctx, t, r2)

	rcs := b.fake.Reconfigs()[n0:]
	if len(rcs) != 2 {
		t.Fatalf("%d reconfigs, want 2 (vote removed, vote restored)", len(rcs))
	}
	checkOneVoteAtATime(t, orig, rcs, []string{douala}, false)
	for _, rc := range append(r.Reconfigs, r2.Reconfigs...) {
		if rc.Path != PathReconfig || rc.On != b.hosts[0] {
			t.Errorf("reconfig %+v: want a normal reconfig on the primary %s", rc, b.hosts[0])
		}
	}
	final := fakeMembers(t, c)
	if !slices.EqualFunc(final, orig, sameMember) {
		t.Errorf("final members %+v, want the original %+v", final, orig)
	}
	if !log.has("STARTUP2 (initial sync)") || !log.has("bytes copied") || !log.has("caught up") {
		t.Errorf("progress lacks the initial sync and the catch-up:\n%s", strings.Join(log.lines, "\n"))
	}
	if !holds(ctx, t, c, douala, "before") {
		t.Error("the rebuilt douala member does not hold the write made before the loss")
	}
	if err := insertMajority(ctx, c, b.fake.Primary(), bson.D{{Key: "_id", Value: "after"}}); err != nil {
		t.Fatal(err)
	}
	// Rebuilt and voting again: a further run is refused as a healthy site.
	if _, err := c.PlanRebuild(ctx, "douala", opts); !errors.Is(err, ErrSiteAnswers) {
		t.Errorf("rebuild after the rebuild: %v, want ErrSiteAnswers", err)
	}
}

// TestRebuildHubNoMajority: 1-1-1 hub and spoke (the spokes reach each other only
// through the hub), the hub lost: no primary anywhere. Without the acknowledgement
// the forced step fails and changes nothing; with it, the hub's vote is removed and
// restored by forced reconfigs on a spoke (every member kept), the rebuilt hub
// initial-syncs and the set ends as it began.
func TestRebuildHubNoMajority(t *testing.T) {
	t.Parallel()
	b, _, c := deployedSet(t)
	ctx := context.Background()
	cloud, douala, yaounde := b.hosts[0], b.hosts[1], b.hosts[2]
	if err := insertMajority(ctx, c, cloud, bson.D{{Key: "_id", Value: "before"}}); err != nil {
		t.Fatal(err)
	}
	orig := fakeMembers(t, c)
	b.fake.Cut(douala, yaounde)
	b.fake.Wipe(cloud)
	if p := b.fake.Primary(); p != "" {
		t.Fatalf("primary %s with the hub lost and the spokes cut apart", p)
	}
	n0 := len(b.fake.Reconfigs())
	r, err := c.PlanRebuild(ctx, "cloud", RebuildOptions{Wait: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Majority || !strings.Contains(r.Steps[0].Note, "FORCED") {
		t.Fatalf("majority %t, first step note %q: want the forced path", r.Majority, r.Steps[0].Note)
	}
	err = r.Steps[0].Apply(ctx)
	if err == nil || !strings.Contains(err.Error(), "--i-understand-rollback") || !strings.Contains(err.Error(), "not answering: "+cloud) {
		t.Fatalf("forced step without the acknowledgement: %v", err)
	}
	if n := len(b.fake.Reconfigs()); n != n0 {
		t.Fatalf("%d reconfigs made by a refused step", n-n0)
	}

	log := &progressLog{}
	r, err = c.PlanRebuild(ctx, "cloud", RebuildOptions{AllowForcedReconfig: true, Wait: 15 * time.Second, Progress: log.add})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Steps[0].Apply(ctx); err != nil {
		t.Fatal(err)
	}
	b.fake.SetInitialSync(300 * time.Millisecond)
	b.fake.SetDown(cloud, false)
	for _, st := range r.Steps[1:] {
		if err := st.Apply(ctx); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	rcs := b.fake.Reconfigs()[n0:]
	if len(rcs) != 2 {
		t.Fatalf("%d reconfigs, want 2", len(rcs))
	}
	checkOneVoteAtATime(t, orig, rcs, []string{cloud}, true)
	for _, rc := range r.Reconfigs {
		if rc.Path != PathForced || rc.On == cloud {
			t.Errorf("reconfig %+v: want forced on a surviving member", rc)
		}
	}
	final := fakeMembers(t, c)
	if !slices.EqualFunc(final, orig, sameMember) {
		t.Errorf("final members %+v, want the original %+v", final, orig)
	}
	if !holds(ctx, t, c, cloud, "before") {
		t.Error("the rebuilt hub member does not hold the write made before the loss")
	}
	if !log.has("forced on "+douala) || !log.has("caught up") {
		t.Errorf("progress does not say which path was used:\n%s", strings.Join(log.lines, "\n"))
	}
	b.fake.HealAll()
	if err := insertMajority(ctx, c, b.fake.Primary(), bson.D{{Key: "_id", Value: "after"}}); err != nil {
		t.Fatalf("majority write after the rebuild: %v", err)
	}
}

// TestRebuildForcedHealthyAndPlan: --force on a site whose member still answers
// names what answered and runs the steps (vote removed, caught up, vote restored),
// ending where it began; the steps print as a plan; a site without members is refused.
func TestRebuildForcedHealthyAndPlan(t *testing.T) {
	t.Parallel()
	b, topo, c := deployedSet(t)
	ctx := context.Background()
	yaounde := b.hosts[2]
	orig := fakeMembers(t, c)
	n0 := len(b.fake.Reconfigs())
	r, err := c.PlanRebuild(ctx, "yaounde", RebuildOptions{Force: true, Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answered) != 1 || !strings.Contains(r.Answered[0], yaounde+" answers as SECONDARY") {
		t.Errorf("answered %q, want yaounde's member", r.Answered)
	}
	p := &plan.Plan{Env: "dev", Sites: []plan.SitePlan{{Site: "yaounde", Steps: r.Steps}}}
	var buf bytes.Buffer
	if err := p.Render(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"~ mongo votes of member " + yaounde, "votes: 1 → 0", "+ mongo initial sync of member " + yaounde, "votes: 0 → 1", "Plan: 1 to create, 2 to update, 0 to remove."} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, buf.String())
		}
	}
	applyAll(ctx, t, r)
	checkOneVoteAtATime(t, orig, b.fake.Reconfigs()[n0:], []string{yaounde}, false)
	if final := fakeMembers(t, c); !slices.EqualFunc(final, orig, sameMember) {
		t.Errorf("final members %+v, want the original %+v", final, orig)
	}
	topo.Site("douala").Mongo.Members = nil
	if _, err := connTo(t, topo).PlanRebuild(ctx, "douala", RebuildOptions{}); err == nil || !strings.Contains(err.Error(), "runs no MongoDB members") {
		t.Errorf("rebuild of a site without members: %v", err)
	}
}

// TestRebuildReaddsRemovedMember: a lost member already removed from the config (by
// hand, or by declare-authoritative) is added back non-voting, initial-syncs, then
// gets its vote: two reconfigs, each one member, surviving members untouched.
func TestRebuildReaddsRemovedMember(t *testing.T) {
	t.Parallel()
	b, topo, c := deployedSet(t)
	ctx := context.Background()
	yaounde := b.hosts[2]
	if err := c.Apply(ctx, Change{Kind: KindRemove, Site: "yaounde", Member: Member{Host: yaounde, Votes: 1}, Voting: true}); err != nil {
		t.Fatal(err)
	}
	b.fake.Wipe(yaounde)
	before := fakeMembers(t, c)
	n0 := len(b.fake.Reconfigs())
	r, err := c.PlanRebuild(ctx, "yaounde", RebuildOptions{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := stepNames(r); len(got) != 2 || !strings.Contains(r.Steps[0].Note, "added with votes 0, priority 0") {
		t.Fatalf("steps %q, first note %q", got, r.Steps[0].Note)
	}
	b.fake.SetDown(yaounde, false)
	applyAll(ctx, t, r)
	rcs := b.fake.Reconfigs()[n0:]
	if len(rcs) != 2 || len(rcs[0].Members) != len(before)+1 || len(rcs[1].Members) != len(before)+1 {
		t.Fatalf("reconfigs %+v: want the member added, then its vote", rcs)
	}
	added := rcs[0].Members[len(before)]
	if added.Host != yaounde || added.Votes != 0 || added.Priority != 0 {
		t.Errorf("added %+v, want %s non-voting", added, yaounde)
	}
	for i, m := range before {
		if !sameMember(rcs[0].Members[i], m) || !sameMember(rcs[1].Members[i], m) {
			t.Errorf("surviving member %s changed: %+v", m.Host, rcs[1].Members[i])
		}
	}
	want, _ := Build(topo)
	if got := rcs[1].Members[len(before)]; got.Votes != int64(want.Member(yaounde).Votes) || got.Priority != want.Member(yaounde).Priority || got.Tags["site"] != "yaounde" {
		t.Errorf("restored %+v, want the configured votes, priority and site tag", got)
	}
}

// TestRebuildHubBackBeforeSteps is `drill site-loss --site cloud`'s order: 1-1-1 hub
// and spoke, the hub lost and the rebuild planned while it is gone (no primary: the
// forced path expected), then the hub's mongod comes back empty before the steps run
// (the drill rebuilds PostgreSQL first). The empty member receives the config and,
// in initial sync (STARTUP2), votes: a spoke is elected with it. Removing the hub's
// vote now would leave that primary without a majority (MongoDB's quorum check
// refuses such a reconfig; the lab's run waited 2 minutes for "no primary"): the
// removal is skipped, the hub syncs from the spoke and the set ends as it began,
// with no forced reconfig.
func TestRebuildHubBackBeforeSteps(t *testing.T) {
	t.Parallel()
	b, _, c := deployedSet(t)
	ctx := context.Background()
	cloud, douala, yaounde := b.hosts[0], b.hosts[1], b.hosts[2]
	if err := insertMajority(ctx, c, cloud, bson.D{{Key: "_id", Value: "before"}}); err != nil {
		t.Fatal(err)
	}
	orig := fakeMembers(t, c)
	b.fake.Cut(douala, yaounde)
	b.fake.Wipe(cloud)
	log := &progressLog{}
	r, err := c.PlanRebuild(ctx, "cloud", RebuildOptions{AllowForcedReconfig: true, Wait: 10 * time.Second, Progress: log.add})
	if err != nil {
		t.Fatal(err)
	}
	if r.Majority {
		t.Fatal("planned with a majority while the hub is gone and the spokes are cut apart")
	}
	n0 := len(b.fake.Reconfigs())
	b.fake.SetInitialSync(300 * time.Millisecond)
	b.fake.SetDown(cloud, false)
	if p := b.fake.Primary(); p != douala && p != yaounde {
		t.Fatalf("primary %q with the empty hub back: want a spoke elected with the hub's vote", p)
	}
	applyAll(ctx, t, r)
	for _, rc := range b.fake.Reconfigs()[n0:] {
		if rc.Force {
			t.Errorf("forced reconfig on %s while a primary was reachable", rc.On)
		}
	}
	if final := fakeMembers(t, c); !slices.EqualFunc(final, orig, sameMember) {
		t.Errorf("final members %+v, want the original %+v", final, orig)
	}
	if !holds(ctx, t, c, cloud, "before") {
		t.Error("the rebuilt hub member does not hold the write made before the loss")
	}
	if !log.has("vote kept") {
		t.Errorf("progress does not say why the vote was kept:\n%s", strings.Join(log.lines, "\n"))
	}
	if err := insertMajority(ctx, c, b.fake.Primary(), bson.D{{Key: "_id", Value: "after"}}); err != nil {
		t.Fatalf("majority write after the rebuild: %v", err)
	}
	for _, h := range []string{douala, yaounde} {
		if !holds(ctx, t, c, h, "after") {
			t.Errorf("%s does not hold the majority write made after the rebuild", h)
		}
	}
}
