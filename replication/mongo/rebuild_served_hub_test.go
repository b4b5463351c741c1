package mongo

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRebuildServedHub is `drill site-loss --site cloud` on members served as the
// lab's stand-in serves them (one mongofake.Serve each, over TCP): the hub's
// process is stopped for good, the rebuild planned, a new empty process started at
// the hub's address before the steps run. The hub rejoins, syncs and is elected;
// its vote is kept (removing it stepped the primary down, and the fake's spokes,
// deferring to the frozen hub, elected no one: the lab's 2 minutes of "no primary").
func TestRebuildServedHub(t *testing.T) {
	s := newServed(t)
	b := s.b
	ctx := context.Background()
	c, orig := s.deploy(ctx)
	cloud := b.hosts[0]
	s.stop(cloud) // the hub's mongod and its data are gone
	time.Sleep(time.Second)
	log := &progressLog{}
	r, err := c.PlanRebuild(ctx, "cloud", RebuildOptions{AllowForcedReconfig: true, Wait: 10 * time.Second, Progress: log.add})
	if err != nil {
		t.Fatal(err)
	}
	s.serve(cloud) // redeployed: a new, empty process at the hub's address
	// As the drill does: the steps run once the site's PostgreSQL is rebuilt, by
	// when the empty hub has joined, synced and (highest priority) been elected.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if v := c.Hello(ctx, cloud); v.Primary {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new hub process was never elected")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, st := range r.Steps {
		if err := st.Apply(ctx); err != nil {
			t.Fatalf("%s: %v\n%s", st, err, strings.Join(log.lines, "\n"))
		}
	}
	for _, rc := range r.Reconfigs {
		if rc.Path == PathForced {
			t.Errorf("forced reconfig %+v", rc)
		}
	}
	if len(r.Kept) != 1 || r.Kept[0].Member != cloud || !strings.Contains(r.Kept[0].Reason, "resynced it already") {
		t.Errorf("votes kept %+v, want the hub's, resynced by MongoDB", r.Kept)
	}
	live, err := c.ReadLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if live.Primary == "" || !slices.EqualFunc(live.Config.Members, orig, func(a, b Member) bool {
		return a.Host == b.Host && a.Votes == b.Votes && a.Priority == b.Priority
	}) {
		t.Errorf("primary %q, members %+v; want a primary and the members as they began %+v", live.Primary, live.Config.Members, orig)
	}
	// The cluster-wide default write concern lives in replicated data: the new
	// hub process, now primary, has it (else the next plan would set it again).
	if !live.MajorityDefault() {
		t.Errorf("default write concern on the new primary %s: %s (%s), want majority (global)", live.Primary, live.DefaultWC, live.DefaultWCSource)
	}
	if !holds(ctx, t, c, cloud, "before") {
		t.Error("the new hub process does not hold the write made before the loss")
	}
}
