package drill

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sitectl/sitectl/traffic"
)

// Event kinds on the timeline.
const (
	EvPreflight   = "preflight"
	EvCut         = "cut"
	EvWritesStart = "writes-start"
	EvWritesEnd   = "writes-end"
	EvHeal        = "heal"
	EvHealFailed  = "heal-failed"
	EvResync      = "resync"    // replication re-enabled after the heal
	EvCaughtUp    = "caught-up" // every flow streaming with zero lag
	EvConverged   = "converged" // every site holds every acknowledged write it should
	EvVerified    = "verified"
	EvDown        = "down"    // db-down / node-loss: the fault is injected
	EvRestore     = "restore" // the fault is removed
	EvError       = "error"
	EvInterrupted = "interrupted"
)

// Event is one point on the timeline.
type Event struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Target string    `json:"target,omitempty"` // link, site or node
	Detail string    `json:"detail,omitempty"`
}

// LagSample is the lag of one flow at one instant.
type LagSample struct {
	At    time.Time `json:"at"`
	Flow  string    `json:"flow"`
	Bytes int64     `json:"bytes"`
	State string    `json:"state"`
}

// WriteStats counts one site's writes during the drill.
type WriteStats struct {
	Site      string `json:"site"`
	Attempted int    `json:"attempted"`
	Acked     int    `json:"acked"`
	Failed    int    `json:"failed"`
	// CutOff counts writes in flight when the window closed or the drill was
	// interrupted: unacknowledged, but not refused by the site.
	CutOff     int       `json:"cut_off,omitempty"`
	FirstError string    `json:"first_error,omitempty"`
	First      time.Time `json:"first,omitzero"`
	Last       time.Time `json:"last,omitzero"`
}

// HealResult says whether one link was healed and how many tries it took.
type HealResult struct {
	Link     string `json:"link"`
	Healed   bool   `json:"healed"`
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

// Observation is a fact a drill reports that is not a pass/fail check (db-down: what
// kept working and what failed while the database was down).
type Observation struct {
	What   string `json:"what"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	// Required observations fail the drill when not OK (a spoke that stopped
	// accepting its own writes during a cut); the others are reported only.
	Required bool `json:"required"`
}

// Report is the outcome of one drill run; it is printed as JSON and rendered as HTML.
type Report struct {
	Drill    string        `json:"drill"`
	Env      string        `json:"environment"`
	Run      string        `json:"run"`
	Site     string        `json:"site,omitempty"`
	Node     string        `json:"node,omitempty"`
	Links    []string      `json:"links,omitempty"`
	Sides    [][]string    `json:"sides,omitempty"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Settings ReportSetting `json:"settings"`

	Preflight    []Check       `json:"preflight,omitempty"`
	Writes       []WriteStats  `json:"writes,omitempty"`
	Observations []Observation `json:"observations,omitempty"`
	Mongo        *MongoResult  `json:"mongo,omitempty"`
	Heal         []HealResult  `json:"heal,omitempty"`
	HealFailed   bool          `json:"heal_failed"`
	Timeline     []Event       `json:"timeline"`
	Lag          []LagSample   `json:"lag,omitempty"`

	Converged bool `json:"converged"`
	// HealToCaughtUp is when PostgreSQL reported every flow streaming with no lag;
	// HealToConverged is when the drill verified every row at every site.
	HealToCaughtUp  *Seconds `json:"heal_to_caught_up_s,omitempty"`
	HealToConverged *Seconds `json:"heal_to_converged_s,omitempty"`

	// Window is when the faults were asked for, in effect and removed; Faults is
	// each fault's own life.
	Window *Window     `json:"fault_window,omitempty"`
	Faults []FaultTime `json:"faults,omitempty"`
	// RecordError says why the fault record stayed in the swarm after the drill.
	RecordError string `json:"record_error,omitempty"`

	// Alerts is the alerting path during the drill (when watched, or why not).
	Alerts *AlertReport `json:"alerts,omitempty"`

	// Availability is what each site's clients saw through their own gateway per
	// phase (before, during, after the fault) when the drill ran with --load.
	Availability []traffic.Availability `json:"availability,omitempty"`
	// APIWrites verifies the writes the --load clients made through the API (each
	// acknowledged write's id present exactly once wherever it should be), after
	// the heal, like the drill's own rows.
	APIWrites *Verdict `json:"api_writes,omitempty"`

	attempts []Attempt // the drill's own writes, for a later verification (soak)

	Verdict *Verdict `json:"verdict,omitempty"`
	Error   string   `json:"error,omitempty"`
	// Interrupted: SIGINT, SIGTERM or --timeout stopped the drill; it healed and
	// verified nothing, and says nothing about the sites.
	Interrupted bool `json:"interrupted"`
	Passed      bool `json:"passed"`
}

// FaultTime is one fault's life: when the drill asked for it, when it took effect
// (Inject returned: the tunnel down, the tasks stopped), when the drill asked to
// remove it and when it was gone. Held, from InEffect to RemoveAsked, is what
// --duration sets.
type FaultTime struct {
	Fault       string    `json:"fault"`
	Asked       time.Time `json:"asked"`
	InEffect    time.Time `json:"in_effect,omitzero"`
	RemoveAsked time.Time `json:"remove_asked,omitzero"`
	Removed     time.Time `json:"removed,omitzero"`
	Held        *Seconds  `json:"held_s,omitempty"`
}

// Window is the drill's faults together: asked (the first asked), in effect (the
// last in effect: from then on every fault is in place), removal asked (the first
// removal) and removed (the last gone). Held is InEffect to RemoveAsked: the
// --duration the drill was asked for, unless it was interrupted.
type Window struct {
	Asked       time.Time `json:"asked"`
	InEffect    time.Time `json:"in_effect,omitzero"`
	RemoveAsked time.Time `json:"remove_asked,omitzero"`
	Removed     time.Time `json:"removed,omitzero"`
	Duration    Seconds   `json:"duration_s"`
	Held        *Seconds  `json:"held_s,omitempty"`
}

// faultWindow completes each fault's Held and sums the faults up into the drill's
// window; nil when no fault was asked for.
func faultWindow(times []FaultTime, d time.Duration) ([]FaultTime, *Window) {
	if len(times) == 0 {
		return nil, nil
	}
	out := make([]FaultTime, len(times))
	w := &Window{Asked: times[0].Asked, Duration: Seconds(d.Seconds())}
	allIn, allOut := true, true
	for i, t := range times {
		if !t.InEffect.IsZero() && !t.RemoveAsked.IsZero() {
			t.Held = Secs(t.RemoveAsked.Sub(t.InEffect))
		}
		out[i] = t
		if t.Asked.Before(w.Asked) {
			w.Asked = t.Asked
		}
		if t.InEffect.IsZero() {
			allIn = false
		} else if t.InEffect.After(w.InEffect) {
			w.InEffect = t.InEffect
		}
		if !t.RemoveAsked.IsZero() && (w.RemoveAsked.IsZero() || t.RemoveAsked.Before(w.RemoveAsked)) {
			w.RemoveAsked = t.RemoveAsked
		}
		if t.Removed.IsZero() {
			allOut = false
		} else if t.Removed.After(w.Removed) {
			w.Removed = t.Removed
		}
	}
	if !allIn {
		w.InEffect = time.Time{}
	}
	if !allOut {
		w.Removed = time.Time{}
	}
	if !w.InEffect.IsZero() && !w.RemoveAsked.IsZero() {
		w.Held = Secs(w.RemoveAsked.Sub(w.InEffect))
	}
	return out, w
}

// String is the window for the terminal: asked, in effect (+ the time it took),
// removed, held.
func (w *Window) String() string {
	if w == nil {
		return ""
	}
	clock := func(t time.Time) string { return t.UTC().Format("15:04:05.000") }
	s := "fault asked " + clock(w.Asked)
	if w.InEffect.IsZero() {
		return s + ", never fully in effect"
	}
	s += fmt.Sprintf(", in effect %s (+%.2fs)", clock(w.InEffect), w.InEffect.Sub(w.Asked).Seconds())
	if !w.Removed.IsZero() {
		s += fmt.Sprintf(", removed %s (removal took %.2fs)", clock(w.Removed), w.Removed.Sub(w.RemoveAsked).Seconds())
	} else {
		s += ", NOT removed"
	}
	if w.Held != nil {
		s += fmt.Sprintf(": held %.2fs of --duration %gs", float64(*w.Held), float64(w.Duration))
	}
	return s
}

// ReportSetting records the settings the drill ran with.
type ReportSetting struct {
	Duration Seconds `json:"duration_s"`
	Writes   int     `json:"writes_per_site"`
}

// Seconds is a duration printed as fractional seconds.
type Seconds float64

// Secs converts a duration.
func Secs(d time.Duration) *Seconds { s := Seconds(d.Seconds()); return &s }

// Summary is the one-line outcome for the terminal.
func (r *Report) Summary() string {
	verdict := "PASSED"
	switch {
	case r.Interrupted:
		verdict = "INTERRUPTED"
	case !r.Passed:
		verdict = "FAILED"
	}
	s := fmt.Sprintf("drill %s %s", r.Drill, verdict)
	if r.Verdict != nil {
		s += fmt.Sprintf(": lost=%d duplicated=%d collisions=%d wrong-site=%d acked=%d",
			r.Verdict.Lost, r.Verdict.Duplicated, r.Verdict.Collisions, r.Verdict.WrongSite, r.Verdict.Acked)
	}
	if a := r.APIWrites; a != nil {
		s += fmt.Sprintf("; API writes lost=%d duplicated=%d acked=%d", a.Lost, a.Duplicated, a.Acked)
	}
	if r.HealFailed {
		s += " — HEAL FAILED, a fault is still in place: run `sitectl drill heal`"
	} else if len(r.Heal) > 0 {
		s += ", healed"
	}
	if r.Error != "" {
		s += " (" + r.Error + ")"
	}
	return s
}

// Attempts are the drill's own writes (nil when it wrote none): a soak verifies
// them again at its end.
func (r *Report) Attempts() []Attempt { return r.attempts }

// AddAPIWrites adds the verification of the writes made through the API; a failed
// one fails the drill.
func (r *Report) AddAPIWrites(v Verdict) {
	r.APIWrites = &v
	r.Passed = r.Passed && v.Passed
}

// finish decides Passed: verification passed, everything healed, no drill error.
func (r *Report) finish(now time.Time) {
	r.Finished = now
	sort.SliceStable(r.Timeline, func(i, j int) bool { return r.Timeline[i].At.Before(r.Timeline[j].At) })
	r.Passed = r.Error == "" && !r.HealFailed && r.Verdict != nil && r.Verdict.Passed
	for _, c := range r.Preflight {
		r.Passed = r.Passed && c.Passed
	}
	for _, o := range r.Observations {
		r.Passed = r.Passed && (o.OK || !o.Required)
	}
}

// recorder collects timeline events and lag samples from concurrent goroutines.
type recorder struct {
	mu     sync.Mutex
	now    func() time.Time
	hook   func(Event) // called with each event, under the lock
	events []Event
	lag    []LagSample
}

func (rc *recorder) event(kind, target, detail string) time.Time {
	return rc.eventAt(time.Time{}, kind, target, detail)
}

// eventAt records an event that happened at t (now when t is zero).
func (rc *recorder) eventAt(t time.Time, kind, target, detail string) time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if t.IsZero() {
		t = rc.now()
	}
	e := Event{At: t, Kind: kind, Target: target, Detail: detail}
	rc.events = append(rc.events, e)
	if rc.hook != nil {
		rc.hook(e)
	}
	return t
}

func (rc *recorder) sample(at time.Time, flows []FlowState) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, f := range flows {
		rc.lag = append(rc.lag, LagSample{At: at, Flow: f.Name(), Bytes: f.LagBytes, State: f.State})
	}
}

func (rc *recorder) into(r *Report) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	r.Timeline = append(r.Timeline, rc.events...)
	r.Lag = append(r.Lag, rc.lag...)
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
