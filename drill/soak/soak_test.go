package soak

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/internal/htmlpage"
	"github.com/sitectl/sitectl/traffic"
)

var labTargets = Targets{Spokes: []string{"yaounde", "douala"}, Hub: "cloud",
	Nodes: map[string][]string{"douala": {"douala-db1"}, "yaounde": {"yaounde-db1"}},
	DB:    []string{"cloud", "douala", "yaounde"}, API: []string{"douala", "yaounde", "cloud"}}

// TestScheduleReplays: the same seed gives the same schedule, every time; other
// seeds give other schedules; every step is one of the kinds asked for, at a
// target that kind can hit.
func TestScheduleReplays(t *testing.T) {
	a, err := Schedule(42, Kinds, labTargets, 30)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Schedule(42, Kinds, labTargets, 30)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 42 twice:\n%v\n%v", a, b)
	}
	// Targets given in another order draw the same schedule.
	shuffled := labTargets
	shuffled.Spokes = []string{"douala", "yaounde"}
	if c, _ := Schedule(42, Kinds, shuffled, 30); !reflect.DeepEqual(a, c) {
		t.Errorf("the order of the targets changed the schedule:\n%v\n%v", a, c)
	}
	kinds := map[string]bool{}
	for i, s := range a {
		kinds[s.Kind] = true
		if s.N != i+1 {
			t.Errorf("step %d numbered %d", i+1, s.N)
		}
		ok := false
		for _, c := range labTargets.candidates(s.Kind) {
			ok = ok || (c.Site == s.Site && c.Node == s.Node)
		}
		if !ok {
			t.Errorf("step %s: not a target of %s", s, s.Kind)
		}
	}
	if len(kinds) != len(Kinds) {
		t.Errorf("30 steps drew only %v", kinds)
	}
	for seed := uint64(1); seed <= 20; seed++ {
		if seed == 42 {
			continue
		}
		if o, _ := Schedule(seed, Kinds, labTargets, 30); reflect.DeepEqual(a, o) {
			t.Errorf("seeds 42 and %d drew the same schedule", seed)
		}
	}
	only, _ := Schedule(7, []string{"partition", "api-kill"}, labTargets, 20)
	for _, s := range only {
		if s.Kind != "partition" && s.Kind != "api-kill" {
			t.Errorf("--faults partition,api-kill drew %s", s)
		}
	}
}

func TestScheduleRefuses(t *testing.T) {
	if _, err := Schedule(1, []string{"node-loss"}, Targets{Hub: "cloud"}, 5); err == nil || !strings.Contains(err.Error(), "--faults node-loss") {
		t.Errorf("node-loss without a worker node: %v, want an error naming --faults", err)
	}
	if _, err := ParseFaults("partition,flood"); err == nil || !strings.Contains(err.Error(), `"flood"`) || !strings.Contains(err.Error(), "api-kill") {
		t.Errorf("--faults partition,flood: %v, want the bad kind and the list", err)
	}
	if k, err := ParseFaults(" db-down , partition,db-down"); err != nil || !reflect.DeepEqual(k, []string{"db-down", "partition"}) {
		t.Errorf("ParseFaults: %v %v", k, err)
	}
	if k, _ := ParseFaults(""); !reflect.DeepEqual(k, Kinds) {
		t.Errorf("empty --faults: %v, want every kind", k)
	}
}

// fakeRunner passes every step, except the one numbered fail; each step takes
// step of the fake clock; cancel, when set, is called in the step numbered stopAt.
type fakeRunner struct {
	clock  *time.Time
	step   time.Duration
	fail   int
	stopAt int
	cancel context.CancelFunc
	ran    []Step
	finals int
	lost   int // the final verification's
}

func (f *fakeRunner) Step(_ context.Context, s Step) StepResult {
	f.ran = append(f.ran, s)
	*f.clock = f.clock.Add(f.step)
	if s.N == f.stopAt {
		f.cancel()
		return StepResult{Step: s, Interrupted: true}
	}
	res := StepResult{Step: s, Passed: s.N != f.fail, Acked: 10, APIAcked: 3}
	if !res.Passed {
		res.Lost = 2
	}
	return res
}

func (f *fakeRunner) Final(context.Context) drill.Verdict {
	f.finals++
	return drill.Verdict{Lost: f.lost, Passed: f.lost == 0}
}

func TestRun(t *testing.T) {
	plan, _ := Schedule(3, Kinds, labTargets, 10)
	run := func(f *fakeRunner, ctx context.Context) *Report {
		start := time.Unix(1000, 0)
		f.clock = &start
		return Run(ctx, plan, f, Options{Seed: 3, Duration: 95 * time.Second, now: func() time.Time { return *f.clock }})
	}
	t.Run("until the duration, then the final verify", func(t *testing.T) {
		f := &fakeRunner{step: 30 * time.Second}
		rep := run(f, context.Background())
		// Steps start at 0, 30, 60 and 90 s: four run, the fifth would start at 120 s.
		if len(rep.Steps) != 4 || f.finals != 1 || !rep.Passed || rep.APIAcked != 12 {
			t.Fatalf("%d steps, %d final(s), passed %v, api %d: %s", len(rep.Steps), f.finals, rep.Passed, rep.APIAcked, rep.Summary())
		}
	})
	t.Run("a failing step stops the soak and fails it", func(t *testing.T) {
		f := &fakeRunner{step: time.Second, fail: 2}
		rep := run(f, context.Background())
		if len(f.ran) != 2 || rep.Passed || rep.Lost != 2 || f.finals != 1 || !strings.Contains(rep.Error, "#2") {
			t.Fatalf("ran %v, passed %v, lost %d, finals %d, error %q", f.ran, rep.Passed, rep.Lost, f.finals, rep.Error)
		}
	})
	t.Run("a loss found only by the final verify fails it", func(t *testing.T) {
		f := &fakeRunner{step: 50 * time.Second, lost: 1}
		if rep := run(f, context.Background()); rep.Passed || rep.Lost != 1 {
			t.Fatalf("passed %v lost %d", rep.Passed, rep.Lost)
		}
	})
	t.Run("Ctrl-C stops after the current step, verifies nothing more", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := &fakeRunner{step: time.Second, stopAt: 2, cancel: cancel}
		rep := run(f, ctx)
		if len(f.ran) != 2 || !rep.Interrupted || rep.Passed || f.finals != 0 || rep.Final != nil {
			t.Fatalf("ran %v, interrupted %v, passed %v, finals %d", f.ran, rep.Interrupted, rep.Passed, f.finals)
		}
	})
}

// TestHTML: the page is self-contained and shows the seed, every fault that ran
// with its verdict, the availability per phase and the final checks.
func TestHTML(t *testing.T) {
	plan, _ := Schedule(5, Kinds, labTargets, 3)
	start := time.Unix(1000, 0)
	f := &fakeRunner{clock: &start, step: time.Second, fail: 3}
	rep := Run(context.Background(), plan, f, Options{Seed: 5, Replay: "--seed 5", Duration: time.Minute, Faults: Kinds, Load: 2,
		now: func() time.Time { return *f.clock }})
	rep.Steps[0].Availability = []traffic.Availability{{Site: "douala", Phase: "#1 during", Requests: 40, OK: 39}}
	var b strings.Builder
	if err := WriteHTML(&b, rep); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	ext, err := htmlpage.ExternalRefs(strings.NewReader(page))
	if err != nil || len(ext) > 0 {
		t.Errorf("external references %v %v", ext, err)
	}
	for _, want := range []string{"Seed <b>5</b>", plan[0].String(), plan[1].String(), plan[2].String(), "FAILED", "#1 during", "39 / 40", "97.50%", "Final verification"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
