package pgdrill

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/sites"
)

func (f *fixture) partition(c drill.Cutter, writes int, d time.Duration) *drill.Drill {
	link, _ := f.topo.Link("douala-cloud")
	return &drill.Drill{Kind: "partition", Topo: f.topo, Site: "douala", Links: []sites.Link{link},
		Faults: drill.LinkFaults(c, []sites.Link{link}), Stores: f.stores(), Observer: f.observer(), Resyncer: enableAll{f},
		Settings: drill.Settings{Duration: d, Writes: writes, Converge: 60 * time.Second, Sample: 100 * time.Millisecond,
			HealBackoff: 50 * time.Millisecond}}
}

func TestLabPartitionDrillPostgres(t *testing.T) {
	f := newFixture(t)
	cut := newProxyCutter(f)
	rep := f.partition(cut, 300, 3*time.Second).Run(context.Background())
	if !rep.Passed {
		t.Fatalf("drill failed: %s\n%+v", rep.Summary(), rep.Verdict)
	}
	v := rep.Verdict
	if v.Acked != 900 || v.Lost != 0 || v.Duplicated != 0 || v.Collisions != 0 || v.WrongSite != 0 {
		t.Fatalf("verdict %+v", v)
	}
	if cut.cuts["douala-cloud"] != 1 || cut.heals["douala-cloud"] != 1 || !f.crossable(t, "douala-cloud") {
		t.Fatalf("cuts %v heals %v: the link was not cut and healed exactly once", cut.cuts, cut.heals)
	}
	// During the cut the flows across it went down and lag built up.
	sawDown, sawLag := false, false
	for _, s := range rep.Lag {
		if s.Flow == "douala→cloud" && s.State != drill.StateStreaming {
			sawDown = true
		}
		if s.Flow == "douala→cloud" && s.Bytes > 0 {
			sawLag = true
		}
	}
	if !sawDown || !sawLag {
		t.Fatalf("the lag samples never show douala→cloud down with lag (down=%t lag=%t)", sawDown, sawLag)
	}
	t.Logf("%s; heal→caught up %v s, heal→converged %v s", rep.Summary(), deref(rep.HealToCaughtUp), deref(rep.HealToConverged))
}

func deref(s *drill.Seconds) float64 {
	if s == nil {
		return -1
	}
	return float64(*s)
}

// interruptingCutter cuts for real, then cancels the drill's context — what SIGINT
// does to `sitectl drill` in the middle of the cut.
type interruptingCutter struct {
	*proxyCutter
	cancel context.CancelFunc
	failOn string // a link whose cut fails instead
}

func (c *interruptingCutter) Cut(ctx context.Context, l sites.Link) error {
	if l.Name() == c.failOn {
		return errors.New("vici: cut " + l.Name() + ": gateway unreachable")
	}
	if err := c.proxyCutter.Cut(ctx, l); err != nil {
		return err
	}
	if c.cancel != nil {
		c.cancel()
		return ctx.Err()
	}
	return nil
}

func TestLabDrillHealsWhenInterruptedMidCut(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cut := &interruptingCutter{proxyCutter: newProxyCutter(f), cancel: cancel}
	rep := f.partition(cut, 100, 2*time.Second).Run(ctx)
	if rep.Passed || !strings.Contains(rep.Error, "context canceled") {
		t.Fatalf("an interrupted drill reported %q (passed=%t)", rep.Error, rep.Passed)
	}
	if cut.heals["douala-cloud"] != 1 || rep.HealFailed || len(rep.Heal) != 2 || !rep.Heal[0].Healed || rep.Heal[1].Link != drill.ResyncName {
		t.Fatalf("heals %v, report heal %+v: the link was not healed", cut.heals, rep.Heal)
	}
	if !f.crossable(t, "douala-cloud") {
		t.Fatal("the link does not carry connections after the interrupted drill")
	}
	f.waitStreaming(t)
}

func TestLabDrillHealsWhenAStepFails(t *testing.T) {
	f := newFixture(t)
	cut := &interruptingCutter{proxyCutter: newProxyCutter(f), failOn: "yaounde-cloud"}
	p := f.partition(cut, 100, 2*time.Second)
	p.Kind, p.Site, p.Links = "cloud-loss", "", f.topo.Links // douala-cloud cuts, yaounde-cloud fails
	p.Faults = drill.LinkFaults(cut, f.topo.Links)
	rep := p.Run(context.Background())
	if rep.Passed || !strings.Contains(rep.Error, "cut yaounde-cloud: vici") {
		t.Fatalf("a drill whose cut failed reported %q (passed=%t)", rep.Error, rep.Passed)
	}
	if cut.heals["douala-cloud"] != 1 || cut.heals["yaounde-cloud"] != 1 || rep.HealFailed {
		t.Fatalf("heals %v: both links (the cut one and the half-cut one) must be healed", cut.heals)
	}
	if !f.crossable(t, "douala-cloud") {
		t.Fatal("douala-cloud still cut after the failed drill")
	}
}

func TestLabVerifierCatchesARowDeletedBehindTheDrillsBack(t *testing.T) {
	f := newFixture(t)
	p := f.partition(newProxyCutter(f), 50, time.Second)
	p.OnEvent = func(e drill.Event) {
		if e.Kind != drill.EvConverged {
			return
		}
		// Delete one douala row's replicated copy at yaounde (yaounde does not publish
		// douala's rows, so the delete goes nowhere else).
		tag, err := f.pools["yaounde"].Exec(context.Background(),
			`DELETE FROM `+drill.Table+` WHERE (site, id) IN (SELECT site, id FROM `+drill.Table+` WHERE site = 'douala' AND run = $1 LIMIT 1)`, p.RunID)
		if err != nil || tag.RowsAffected() != 1 {
			t.Errorf("delete behind the drill's back: %v (%d rows)", err, tag.RowsAffected())
		}
	}
	rep := p.Run(context.Background())
	if rep.Passed || rep.Verdict == nil || rep.Verdict.Lost != 1 || rep.Verdict.LostSample[0].At != "yaounde" {
		t.Fatalf("want a failed drill with lost = 1 at yaounde; got %s %+v", rep.Summary(), rep.Verdict)
	}
}

func TestLabPreflightRefusesADisabledSubscription(t *testing.T) {
	f := newFixture(t)
	sc := &SubscriptionCutter{Flows: f.flows, Pool: Pools(f.pools)}
	link, _ := f.topo.Link("yaounde-cloud")
	if err := sc.Cut(context.Background(), link); err != nil {
		t.Fatal(err)
	}
	cut := newProxyCutter(f)
	rep := f.partition(cut, 10, time.Second).Run(context.Background())
	if rep.Passed || !strings.Contains(rep.Error, "preflight failed") || !strings.Contains(rep.Error, "yaounde→cloud: disabled") {
		t.Fatalf("preflight passed with a disabled subscription: %q", rep.Error)
	}
	if len(cut.cuts) != 0 || len(rep.Heal) != 0 {
		t.Fatalf("a drill that failed preflight cut something: cuts %v", cut.cuts)
	}
}
