package drill

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/sites"
)

// funcCutter is a Cutter made of functions, for the healer's pure logic.
type funcCutter struct {
	cut  func(context.Context, sites.Link) error
	heal func(context.Context, sites.Link) error
}

func (f funcCutter) Cut(ctx context.Context, l sites.Link) error  { return f.cut(ctx, l) }
func (f funcCutter) Heal(ctx context.Context, l sites.Link) error { return f.heal(ctx, l) }

var doualaCloud = sites.Link{A: "douala", B: "cloud"}

func newHealer(out *bytes.Buffer, slept *[]time.Duration) *healer {
	return &healer{settings: Settings{HealAttempts: 4}.withDefaults(), rec: &recorder{now: time.Now},
		prog: progress.New(out), sleep: func(d time.Duration) { *slept = append(*slept, d) }}
}

func TestHealUsesAFreshContextAndRetries(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	cancel() // SIGINT arrived: the drill's context is dead
	calls := 0
	c := funcCutter{heal: func(ctx context.Context, l sites.Link) error {
		calls++
		if ctx.Err() != nil {
			t.Errorf("heal %s got a cancelled context", l.Name())
		}
		if _, ok := ctx.Deadline(); !ok {
			t.Error("heal try has no deadline of its own")
		}
		if calls < 3 {
			return errors.New("vici: connection refused")
		}
		return nil
	}}
	var out bytes.Buffer
	var slept []time.Duration
	h := newHealer(&out, &slept)
	h.arm(LinkFault{Cutter: c, Link: doualaCloud}, time.Now())
	res := h.healAll(parent)
	if len(res) != 1 || !res[0].Healed || res[0].Attempts != 3 || calls != 3 {
		t.Fatalf("results %+v after %d calls, want healed on try 3", res, calls)
	}
	if len(slept) != 2 || slept[0] != time.Second || slept[1] != 2*time.Second {
		t.Fatalf("backoff %v, want [1s 2s]", slept)
	}
	if again := h.healAll(parent); calls != 3 || len(again) != 1 {
		t.Fatalf("second healAll healed again (%d calls)", calls)
	}
	if !strings.Contains(out.String(), "✓ heal douala-cloud") {
		t.Fatalf("progress does not show the heal:\n%s", out.String())
	}
}

func TestHealFailureIsLoud(t *testing.T) {
	c := funcCutter{heal: func(context.Context, sites.Link) error { return errors.New("gateway unreachable") }}
	var out bytes.Buffer
	var slept []time.Duration
	h := newHealer(&out, &slept)
	h.arm(LinkFault{Cutter: c, Link: doualaCloud}, time.Now())
	h.arm(LinkFault{Cutter: c, Link: sites.Link{A: "yaounde", B: "cloud"}}, time.Now())
	res := h.healAll(context.Background())
	if !healFailed(res) || len(res) != 2 || res[0].Attempts != 4 || res[0].Error == "" {
		t.Fatalf("results %+v, want both links failed after 4 tries", res)
	}
	if !strings.Contains(out.String(), "HEAL FAILED: douala-cloud is still faulty") ||
		!strings.Contains(out.String(), "sitectl tunnels up --link yaounde-cloud") {
		t.Fatalf("no loud heal failure on stderr:\n%s", out.String())
	}
	var failedEvents int
	for _, e := range h.rec.events {
		if e.Kind == EvHealFailed {
			failedEvents++
		}
	}
	if failedEvents != 2 {
		t.Fatalf("%d heal-failed events on the timeline, want 2", failedEvents)
	}
	r := &Report{Heal: res, HealFailed: healFailed(res), Verdict: &Verdict{Passed: true}}
	r.finish(time.Now())
	if r.Passed || !strings.Contains(r.Summary(), "HEAL FAILED") {
		t.Fatalf("a drill whose heal failed passed: %s", r.Summary())
	}
}

// TestHealSurvivesAPanickingFault: a fault whose Remove panics is reported as not
// healed, and the faults armed before it still heal.
func TestHealSurvivesAPanickingFault(t *testing.T) {
	healed := false
	ok := funcCutter{heal: func(context.Context, sites.Link) error { healed = true; return nil }}
	bad := funcCutter{heal: func(context.Context, sites.Link) error { panic("boom") }}
	var out bytes.Buffer
	var slept []time.Duration
	h := newHealer(&out, &slept)
	h.arm(LinkFault{Cutter: ok, Link: doualaCloud}, time.Now())
	h.arm(LinkFault{Cutter: bad, Link: sites.Link{A: "yaounde", B: "cloud"}}, time.Now())
	res := h.healAll(context.Background())
	if !healed {
		t.Fatal("the fault armed before the panicking one was not healed")
	}
	if len(res) != 2 || res[0].Healed || !strings.Contains(res[0].Error, "panicked: boom") {
		t.Fatalf("results %+v, want the panicking fault reported unhealed", res)
	}
}

// TestDrillGoroutinePanicIsRethrown: a panic caught in a drill goroutine is raised
// again in the caller's goroutine (where Run's deferred heal recovers it).
func TestDrillGoroutinePanicIsRethrown(t *testing.T) {
	p := &Drill{}
	done := make(chan struct{})
	go func() { defer close(done); defer p.catch(); panic("store exploded") }()
	<-done
	defer func() {
		if r := recover(); r != "store exploded" {
			t.Fatalf("rethrow raised %v", r)
		}
	}()
	p.rethrow()
	t.Fatal("rethrow did not panic")
}
