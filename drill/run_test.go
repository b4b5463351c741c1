package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/sites"
)

// memStore is a site's database in memory; insert, when set, runs before each write
// is stored (to slow it down or interrupt the drill).
type memStore struct {
	mu     sync.Mutex
	rows   []Row
	insert func(ctx context.Context, n int) error
}

func (m *memStore) Ping(context.Context) error    { return nil }
func (m *memStore) Prepare(context.Context) error { return nil }
func (m *memStore) Insert(ctx context.Context, r Row) error {
	m.mu.Lock()
	n := len(m.rows)
	m.mu.Unlock()
	if m.insert != nil {
		if err := m.insert(ctx, n); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, r)
	return nil
}
func (m *memStore) Rows(_ context.Context, run string) ([]Row, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Row
	for _, r := range m.rows {
		if r.Run == run {
			out = append(out, r)
		}
	}
	return out, nil
}

// funcFault is a Fault made of functions; log, when set, gets "inject" and "remove".
type funcFault struct {
	name   string
	inject func(context.Context) error
	remove func(context.Context) error
	log    *[]string
}

func (f *funcFault) Name() string { return f.name }
func (f *funcFault) Inject(ctx context.Context) error {
	if f.log != nil {
		*f.log = append(*f.log, "inject")
	}
	if f.inject == nil {
		return nil
	}
	return f.inject(ctx)
}
func (f *funcFault) Remove(ctx context.Context) error {
	if f.log != nil {
		*f.log = append(*f.log, "remove")
	}
	if f.remove == nil {
		return nil
	}
	return f.remove(ctx)
}
func (f *funcFault) Events() (string, string) { return EvDown, EvRestore }
func (f *funcFault) Manual() string           { return "restore " + f.name }
func (f *funcFault) Record(context.Context) (FaultRecord, error) {
	return FaultRecord{Kind: RecordService, What: f.name + " down", Sites: []string{"douala"}}, nil
}

// funcProbe is a Probe made of a function.
type funcProbe func(ctx context.Context) []Observation

func (p funcProbe) Observe(ctx context.Context) []Observation { return p(ctx) }

// twoSites is douala and a cloud hub, both running PostgreSQL, no replication (each
// row is expected at its owner only).
func twoSites() *sites.Topology {
	return &sites.Topology{Env: "dev", Hub: "cloud", Links: []sites.Link{{A: "douala", B: "cloud"}},
		Sites: []*sites.Site{{Name: "cloud", Role: "hub", Stacks: []string{"postgres"}}, {Name: "douala", Role: "spoke", Stacks: []string{"postgres"}}}}
}

func testDrill(f Fault, stores map[string]*memStore, s Settings) (*Drill, *bytes.Buffer) {
	st := map[string]Store{}
	for k, v := range stores {
		st[k] = v
	}
	var out bytes.Buffer
	return &Drill{Kind: "db-down", Topo: twoSites(), Site: "douala", Faults: []Fault{f}, Stores: st,
		Settings: s, Progress: progress.New(&out)}, &out
}

// TestFaultLastsDurationFromWhenItTookEffect: a fault that takes 300ms to take
// effect, sites that write slower than the pacing and a probe that waits as long as
// it may still hold the fault --duration from the moment it took effect, and the
// report shows asked, in effect and removed. (Before, slow writes and a probe's
// settle time ran one after the other and stretched a 30s node-loss to 54s.)
func TestFaultLastsDurationFromWhenItTookEffect(t *testing.T) {
	const d = 400 * time.Millisecond
	slow := func(ctx context.Context, _ int) error { // 20ms a write: 100 writes need 2s
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
			return nil
		}
	}
	stores := map[string]*memStore{"cloud": {insert: slow}, "douala": {insert: slow}}
	var removeAsked time.Time
	f := &funcFault{name: "service postgres_db at douala",
		inject: func(context.Context) error { time.Sleep(300 * time.Millisecond); return nil },
		remove: func(context.Context) error {
			if removeAsked.IsZero() {
				removeAsked = time.Now()
			}
			time.Sleep(50 * time.Millisecond)
			return nil
		}}
	p, _ := testDrill(f, stores, Settings{Duration: d, Writes: 100, Converge: 5 * time.Second, Sample: 10 * time.Millisecond})
	p.Probes = []Probe{funcProbe(func(ctx context.Context) []Observation {
		// A probe waiting for services to reschedule: it may use the whole window,
		// never more (it gives up after 3s on its own).
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
		}
		return []Observation{{What: "douala: api keeps running", OK: true, Detail: "1 of 1"}}
	})}
	rep := p.Run(context.Background())
	if !rep.Passed {
		t.Fatalf("drill failed: %s; observations %+v", rep.Summary(), rep.Observations)
	}
	w := rep.Window
	if w == nil || w.Held == nil || len(rep.Faults) != 1 || rep.Faults[0].Held == nil {
		t.Fatalf("no fault window in the report: %+v %+v", w, rep.Faults)
	}
	if took := w.InEffect.Sub(w.Asked); took < 300*time.Millisecond {
		t.Errorf("in effect %s after asked, want ≥ 300ms (the time Inject took)", took)
	}
	held := time.Duration(float64(*w.Held) * float64(time.Second))
	if held < d {
		t.Errorf("fault held %s, less than --duration %s", held, d)
	}
	// Generous bound: the old sequencing held it ≥ 2s (the writes) + 3s (the probe).
	if held > d+time.Second {
		t.Errorf("fault held %s for --duration %s: slow writes or the probe stretched it", held, d)
	}
	if !w.RemoveAsked.Equal(rep.Faults[0].RemoveAsked) || w.Removed.Before(w.RemoveAsked.Add(50*time.Millisecond)) {
		t.Errorf("window %+v: removal asked/removed do not match the fault's %+v", w, rep.Faults[0])
	}
	if removeAsked.Before(w.InEffect.Add(d)) {
		t.Errorf("Remove called %s after in effect, before --duration", removeAsked.Sub(w.InEffect))
	}
	for _, st := range rep.Writes {
		if st.Attempted >= 100 || st.Failed != 0 || st.Acked == 0 {
			t.Errorf("%s: %+v: want fewer than 100 writes (the window closed), none failed", st.Site, st)
		}
	}
	if !strings.Contains(w.String(), "in effect") || !strings.Contains(w.String(), "held 0.4") {
		t.Errorf("window for the terminal: %q", w.String())
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, rep); err != nil || !strings.Contains(page.String(), `id="fault-window">fault asked`) {
		t.Errorf("the HTML report has no fault window (%v)", err)
	}
	t.Logf("%s", w)
}

// TestFaultWindow: the accounting of asked, in effect, removal asked and removed.
func TestFaultWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	secs := func(s *Seconds) string {
		if s == nil {
			return "-"
		}
		return fmt.Sprintf("%.1f", float64(*s))
	}
	for _, tc := range []struct {
		name  string
		times []FaultTime
		// want: window held, in effect, removed (seconds after t0; -1 none), and each
		// fault's held.
		held, inEffect, removed string
		faults                  []string
	}{
		{"one fault, slow to take effect",
			[]FaultTime{{Asked: at(0), InEffect: at(24), RemoveAsked: at(54), Removed: at(60)}},
			"30.0", "24", "60", []string{"30.0"}},
		{"two links: in effect when the last is cut, removed when the last is healed",
			[]FaultTime{{Asked: at(0), InEffect: at(1), RemoveAsked: at(33), Removed: at(34)},
				{Asked: at(1), InEffect: at(3), RemoveAsked: at(34), Removed: at(35)}},
			"30.0", "3", "35", []string{"32.0", "31.0"}},
		{"inject failed: never in effect",
			[]FaultTime{{Asked: at(0), InEffect: at(1), RemoveAsked: at(2), Removed: at(3)}, {Asked: at(1), RemoveAsked: at(2), Removed: at(2)}},
			"-", "-1", "3", []string{"1.0", "-"}},
		{"removal failed: not removed",
			[]FaultTime{{Asked: at(0), InEffect: at(1), RemoveAsked: at(31)}},
			"30.0", "1", "-1", []string{"30.0"}},
		{"interrupted after 5s",
			[]FaultTime{{Asked: at(0), InEffect: at(2), RemoveAsked: at(7), Removed: at(8)}},
			"5.0", "2", "8", []string{"5.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			faults, w := faultWindow(tc.times, 30*time.Second)
			rel := func(x time.Time) string {
				if x.IsZero() {
					return "-1"
				}
				return fmt.Sprintf("%g", x.Sub(t0).Seconds())
			}
			if got := secs(w.Held); got != tc.held {
				t.Errorf("held %s, want %s", got, tc.held)
			}
			if got := rel(w.InEffect); got != tc.inEffect {
				t.Errorf("in effect %s, want %s", got, tc.inEffect)
			}
			if got := rel(w.Removed); got != tc.removed {
				t.Errorf("removed %s, want %s", got, tc.removed)
			}
			if !w.Asked.Equal(t0) || float64(w.Duration) != 30 {
				t.Errorf("asked %s duration %v", w.Asked, w.Duration)
			}
			for i, f := range faults {
				if got := secs(f.Held); got != tc.faults[i] {
					t.Errorf("fault %d held %s, want %s", i, got, tc.faults[i])
				}
			}
		})
	}
	if f, w := faultWindow(nil, time.Second); f != nil || w != nil {
		t.Error("a drill that asked for no fault has a window")
	}
}

// TestClassifyWrite: a write in flight when the drill's context ended is cut off,
// never a failure of the site.
func TestClassifyWrite(t *testing.T) {
	refused := errors.New("douala: insert: dial tcp 10.20.0.10:5432: connect: connection refused")
	for _, tc := range []struct {
		name        string
		err, ctxErr error
		want        string
	}{
		{"acknowledged", nil, nil, writeAcked},
		{"acknowledged as the window closed", nil, context.DeadlineExceeded, writeAcked},
		{"site refused", refused, nil, writeFailed},
		{"site did not answer within writeTimeout", fmt.Errorf("insert: %w", context.DeadlineExceeded), nil, writeFailed},
		{"SIGINT during the write", fmt.Errorf("cloud: insert: %w", context.Canceled), context.Canceled, writeCutOff},
		{"SIGINT, pgx says the connection closed", errors.New("cloud: insert: conn closed"), context.Canceled, writeCutOff},
		{"window closed during the write", fmt.Errorf("insert: %w", context.DeadlineExceeded), context.DeadlineExceeded, writeCutOff},
	} {
		if got := classifyWrite(tc.err, tc.ctxErr); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestInterruptedDrillIsNotAFailingSite: SIGINT in the middle of the writes (here
// the cancel of the drill's context with its cause) makes an INTERRUPTED report: the
// fault removed, nothing verified, and no observation blaming a site for writes the
// interruption cancelled ("cloud keeps accepting its own writes: context canceled").
func TestInterruptedDrillIsNotAFailingSite(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	interrupt := func(ctx context.Context, n int) error {
		if n == 5 {
			cancel(errors.New("interrupted by SIGINT"))
			<-ctx.Done()
			return fmt.Errorf("cloud: insert: %w", ctx.Err())
		}
		return nil
	}
	stores := map[string]*memStore{"cloud": {insert: interrupt}, "douala": {}}
	removed := 0
	f := &funcFault{name: "tunnel douala-cloud", remove: func(ctx context.Context) error {
		if ctx.Err() != nil {
			t.Error("removal got the interrupted context")
		}
		removed++
		return nil
	}}
	p, progressOut := testDrill(f, stores, Settings{Duration: 5 * time.Second, Writes: 50, Sample: 10 * time.Millisecond})
	p.Probes = []Probe{funcProbe(func(ctx context.Context) []Observation {
		<-ctx.Done()
		return []Observation{{What: "cloud services", Detail: ctx.Err().Error(), Required: true}}
	})}
	rep := p.Run(ctx)
	if !rep.Interrupted || rep.Passed || removed != 1 || rep.HealFailed {
		t.Fatalf("interrupted=%t passed=%t removed %d heal-failed=%t: %s", rep.Interrupted, rep.Passed, removed, rep.HealFailed, rep.Summary())
	}
	for _, o := range rep.Observations {
		if !o.OK {
			t.Errorf("an interrupted drill reports a failing observation: %s: %s", o.What, o.Detail)
		}
	}
	for _, st := range rep.Writes {
		if st.Failed != 0 {
			t.Errorf("%s: %d write(s) counted failed; the interruption cut them off", st.Site, st.Failed)
		}
	}
	if rep.Verdict != nil {
		t.Errorf("an interrupted drill has a verdict: %+v", rep.Verdict)
	}
	if s := rep.Summary(); !strings.Contains(s, "INTERRUPTED") || !strings.Contains(s, "interrupted by SIGINT") || strings.Contains(s, "FAILED") {
		t.Errorf("summary %q", s)
	}
	if w := rep.Window; w == nil || w.Removed.IsZero() {
		t.Errorf("window of the interrupted drill: %+v", w)
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, rep); err != nil || !strings.Contains(page.String(), ">INTERRUPTED</span>") {
		t.Errorf("the HTML report does not say INTERRUPTED (%v)", err)
	}
	t.Logf("%s\n%s", rep.Summary(), progressOut.String())
}

// fakeJournal logs Open and Close into the same log as the fault.
type fakeJournal struct {
	log     *[]string
	openErr error
	rec     Record
}

func (j *fakeJournal) Open(_ context.Context, r Record) error {
	*j.log = append(*j.log, "open")
	j.rec = r
	return j.openErr
}
func (j *fakeJournal) Close(_ context.Context, keep bool) error {
	if keep {
		*j.log = append(*j.log, "keep")
	} else {
		*j.log = append(*j.log, "close")
	}
	return nil
}

// TestJournalOrder: the faults are recorded before anything is injected, the record
// is removed only once every fault is, a failed removal keeps it, and a record that
// cannot be written stops the drill before it injects.
func TestJournalOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		openErr   error
		removeErr error
		want      string
	}{
		{"healed", nil, nil, "open inject remove close"},
		{"removal fails: the record stays", nil, errors.New("engine unreachable"), "open inject remove remove keep"},
		{"record refused: nothing injected", errors.New("this node is not a swarm manager"), nil, "open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			f := &funcFault{name: "service postgres_db at douala", log: &log, remove: func(context.Context) error { return tc.removeErr }}
			p, _ := testDrill(f, map[string]*memStore{"cloud": {}, "douala": {}}, Settings{Duration: 10 * time.Millisecond, Writes: 2,
				HealAttempts: 2, HealBackoff: time.Millisecond})
			j := &fakeJournal{log: &log, openErr: tc.openErr}
			p.Journal = j
			rep := p.Run(context.Background())
			if got := strings.Join(log, " "); got != tc.want {
				t.Fatalf("order %q, want %q (%s)", got, tc.want, rep.Summary())
			}
			if tc.openErr != nil && !strings.Contains(rep.Error, "nothing was injected") {
				t.Errorf("error %q", rep.Error)
			}
			if tc.removeErr != nil && !strings.Contains(rep.RecordError, "sitectl drill heal") {
				t.Errorf("record error %q", rep.RecordError)
			}
			if tc.openErr == nil && (j.rec.Run != rep.Run || len(j.rec.Faults) != 1 || j.rec.PID == 0 || j.rec.Faults[0].What == "") {
				t.Errorf("record %+v", j.rec)
			}
		})
	}
}
