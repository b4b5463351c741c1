package drill

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The alerting path as a drill sees it: the alerts its faults raise must reach the
// receiver through Alertmanager while the faults are in place, and resolve once
// they are removed. Alerts Alertmanager holds without notifying (a replication
// alert inhibited by its site's TunnelDown) are reported from its API.

// Timeline kinds of the alerting path.
const (
	EvAlertFiring   = "alert-firing"
	EvAlertResolved = "alert-resolved"
)

// Notified is one alert of a notification the receiver got.
type Notified struct {
	At     time.Time
	Name   string
	Site   string
	Status string // firing | resolved
	Labels map[string]string
}

// Held is one alert Alertmanager holds now.
type Held struct {
	Name  string
	Site  string
	State string // active (notified), suppressed (inhibited or silenced), unprocessed
	// InhibitedBy is non-empty when an inhibition rule holds the alert back.
	InhibitedBy []string
	Labels      map[string]string
}

// AlertReader reads both ends of the alerting path.
type AlertReader interface {
	// Received returns every alert of every notification the receiver got.
	Received(ctx context.Context) ([]Notified, error)
	// Held returns the alerts Alertmanager holds.
	Held(ctx context.Context) ([]Held, error)
}

// ExpectedAlert is an alert the drill's faults must raise.
type ExpectedAlert struct {
	Name string
	Site string
}

func (e ExpectedAlert) String() string { return e.Name + "{site=" + e.Site + "}" }

// Alerting is what a drill watches of the alerting path.
type Alerting struct {
	// Reader reads the receiver and Alertmanager; nil: not watched (Note says why).
	Reader AlertReader
	// Receiver names where the notifications are read, for the report.
	Receiver string
	Expect   []ExpectedAlert
	// Detect bounds the time from the faults in effect to an expected alert at the
	// receiver (scrape, rule for:, evaluation, group_wait); a fault held for less
	// is not expected to raise it. Resolve bounds the time from the faults' removal
	// to the resolved notifications.
	Detect, Resolve time.Duration
	// Note says why alerts are not watched (no monitoring deployed, no receiver).
	Note string
}

// AlertReport is the alerting path in the drill report.
type AlertReport struct {
	Receiver string   `json:"receiver,omitempty"`
	Note     string   `json:"note,omitempty"`
	Detect   *Seconds `json:"detect_bound_s,omitempty"`
	Resolve  *Seconds `json:"resolve_bound_s,omitempty"`
	// Alerts are the alerts seen from the faults' start, sorted by first seen.
	Alerts []AlertTime `json:"alerts,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// AlertTime is one alert's life during the drill, with its times relative to the
// faults: FiredAfterCut from the faults in effect, ResolvedAfterHeal from their
// removal.
type AlertTime struct {
	Alert string `json:"alert"`
	Site  string `json:"site,omitempty"`
	// Key is the labels that tell alerts of one name and site apart (link, slot,
	// subscription), as k=v pairs.
	Key      string `json:"key,omitempty"`
	Expected bool   `json:"expected"`
	// Via is "receiver" when Alertmanager notified it, "alertmanager" when it was
	// only held there (State says why: suppressed by an inhibition or silence).
	Via         string `json:"via"`
	State       string `json:"state,omitempty"`
	InhibitedBy bool   `json:"inhibited,omitempty"`
	// HeldAfterCut is when Alertmanager was first seen holding the alert, from the
	// faults in effect (an alert inhibited during the cut and notified after the heal
	// has both).
	HeldAfterCut      *Seconds  `json:"held_after_cut_s,omitempty"`
	Fired             time.Time `json:"fired,omitzero"`
	Resolved          time.Time `json:"resolved,omitzero"`
	FiredAfterCut     *Seconds  `json:"fired_after_cut_s,omitempty"`
	ResolvedAfterHeal *Seconds  `json:"resolved_after_heal_s,omitempty"`
}

// Name is "TunnelDown{site=douala, link=douala-cloud}".
func (a AlertTime) Name() string {
	in := []string{}
	if a.Site != "" {
		in = append(in, "site="+a.Site)
	}
	if a.Key != "" {
		in = append(in, a.Key)
	}
	return a.Alert + "{" + strings.Join(in, ", ") + "}"
}

// alertKeyLabels tell alerts of one name and site apart.
var alertKeyLabels = []string{"link", "slot_name", "subname", "service", "node", "job"}

func alertKey(labels map[string]string) string {
	var kv []string
	for _, k := range alertKeyLabels {
		if v := labels[k]; v != "" {
			kv = append(kv, k+"="+v)
		}
	}
	return strings.Join(kv, ", ")
}

// alertWatch polls Alertmanager while the drill runs and remembers, per alert,
// when it was first seen and how.
type alertWatch struct {
	a     Alerting
	now   func() time.Time
	every time.Duration
	mu    sync.Mutex
	held  map[string]*AlertTime
	// before are the alerts (name{site}) active when the drill started; pre every
	// alert Alertmanager held then (heldID): a notification repeating one of those
	// during the drill is not the drill's.
	before map[string]bool
	pre    map[string]bool
	err    string
}

func heldID(name, site, key string) string { return name + "|" + site + "|" + key }

func (w *alertWatch) poll(ctx context.Context) {
	hs, err := w.a.Reader.Held(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.err == "" {
			w.err = "read Alertmanager: " + err.Error()
		}
		return
	}
	for _, h := range hs {
		id := heldID(h.Name, h.Site, alertKey(h.Labels))
		if w.held[id] == nil {
			w.held[id] = &AlertTime{Alert: h.Name, Site: h.Site, Key: alertKey(h.Labels), Via: "alertmanager", State: h.State, Fired: w.now()}
		}
		if len(h.InhibitedBy) > 0 {
			w.held[id].InhibitedBy = true
			w.held[id].State = h.State
		}
	}
}

// run polls until ctx ends.
func (w *alertWatch) run(ctx context.Context) {
	for {
		w.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.every):
		}
	}
}

// startAlerts reads what Alertmanager holds before the faults and starts polling
// it; stop ends the polling. Nil when the drill watches no alerts.
func (p *Drill) startAlerts(ctx context.Context, s Settings) (w *alertWatch, stop func()) {
	a := p.Alerting
	if a.Reader == nil {
		return nil, func() {}
	}
	// Every 4 lag samples (1 s by default).
	w = &alertWatch{a: a, now: p.now, every: 4 * s.Sample, held: map[string]*AlertTime{}, before: map[string]bool{}, pre: map[string]bool{}}
	if hs, err := a.Reader.Held(ctx); err == nil {
		for _, h := range hs {
			w.pre[heldID(h.Name, h.Site, alertKey(h.Labels))] = true
			if h.State == "active" {
				w.before[ExpectedAlert{h.Name, h.Site}.String()] = true
			}
		}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); defer p.catch(); w.run(wctx) }()
	return w, func() { cancel(); wg.Wait() }
}

// alertsSeen waits (bounded by Resolve, twice) for every alert notified during the
// faults to be resolved at the receiver, then puts the alerting path in the report:
// its table, the timeline events and one required observation per expected alert.
func (p *Drill) alertsSeen(ctx context.Context, rep *Report, w *alertWatch, stop func(), win *Window, rec *recorder) {
	a := p.Alerting
	if w == nil {
		if a.Note != "" {
			rep.Alerts = &AlertReport{Receiver: a.Receiver, Note: a.Note}
			rep.Observations = append(rep.Observations, Observation{What: "alerting path watched", OK: true, Detail: "no: " + a.Note})
		}
		return
	}
	ar := &AlertReport{Receiver: a.Receiver, Detect: Secs(a.Detect), Resolve: Secs(a.Resolve)}
	rep.Alerts = ar
	var got []AlertTime
	var err error
	for end := p.now().Add(2 * a.Resolve); ; p.sleep(500 * time.Millisecond) {
		got, err = p.notified(ctx, win)
		if err != nil || allResolved(got) || !p.now().Before(end) || ctx.Err() != nil {
			break
		}
	}
	stop()
	if err != nil {
		ar.Error = "read the receiver: " + err.Error()
	}
	w.mu.Lock()
	if w.err != "" {
		ar.Error = joinErr(ar.Error, w.err)
	}
	got = slices.DeleteFunc(got, func(g AlertTime) bool { return w.pre[heldID(g.Alert, g.Site, g.Key)] })
	seen := map[string]bool{}
	for _, g := range got {
		seen[heldID(g.Alert, g.Site, g.Key)] = true
	}
	for i, g := range got {
		// A notified alert Alertmanager held before: when, and whether inhibited.
		if h := w.held[heldID(g.Alert, g.Site, g.Key)]; h != nil && !w.pre[heldID(g.Alert, g.Site, g.Key)] {
			got[i].HeldAfterCut, got[i].InhibitedBy = sinceIn(win.InEffect, h.Fired), h.InhibitedBy
		}
	}
	for id, h := range w.held {
		// Alerts the receiver got are listed from the receiver; the others are
		// those Alertmanager held back (or had not notified yet).
		if !seen[id] && !w.pre[id] && !h.Fired.Before(win.Asked) {
			h.FiredAfterCut = sinceIn(win.InEffect, h.Fired)
			h.HeldAfterCut = h.FiredAfterCut
			got = append(got, *h)
		}
	}
	before := w.before
	w.mu.Unlock()
	sort.SliceStable(got, func(i, j int) bool { return got[i].Fired.Before(got[j].Fired) })
	for i := range got {
		for _, e := range a.Expect {
			got[i].Expected = got[i].Expected || (e.Name == got[i].Alert && e.Site == got[i].Site)
		}
		if got[i].Via == "receiver" {
			rec.eventAt(got[i].Fired, EvAlertFiring, got[i].Site, got[i].Name()+" at the receiver")
			if !got[i].Resolved.IsZero() {
				rec.eventAt(got[i].Resolved, EvAlertResolved, got[i].Site, got[i].Name()+" resolved at the receiver")
			}
		}
	}
	ar.Alerts = got
	for _, e := range a.Expect {
		rep.Observations = append(rep.Observations, expectObservations(e, got, win, a, before[e.String()], ar.Error)...)
	}
}

// notified reads the receiver: every alert firing there since the faults were
// asked, with its first firing and, after it, its first resolution.
func (p *Drill) notified(ctx context.Context, win *Window) ([]AlertTime, error) {
	ns, err := p.Alerting.Reader.Received(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*AlertTime{}
	var order []string
	for _, n := range ns {
		if n.At.Before(win.Asked) {
			continue
		}
		id := heldID(n.Name, n.Site, alertKey(n.Labels))
		t := byID[id]
		switch {
		case t == nil && n.Status == "firing":
			byID[id] = &AlertTime{Alert: n.Name, Site: n.Site, Key: alertKey(n.Labels), Via: "receiver", State: "notified", Fired: n.At}
			order = append(order, id)
		case t != nil && n.Status == "resolved" && t.Resolved.IsZero():
			t.Resolved = n.At
		}
	}
	out := make([]AlertTime, 0, len(order))
	for _, id := range order {
		t := *byID[id]
		t.FiredAfterCut = sinceIn(win.InEffect, t.Fired)
		if !t.Resolved.IsZero() {
			t.ResolvedAfterHeal = sinceIn(win.Removed, t.Resolved)
		}
		out = append(out, t)
	}
	return out, nil
}

func sinceIn(from, t time.Time) *Seconds {
	if from.IsZero() || t.IsZero() {
		return nil
	}
	return Secs(t.Sub(from))
}

func allResolved(ts []AlertTime) bool {
	return !slices.ContainsFunc(ts, func(t AlertTime) bool { return t.Resolved.IsZero() })
}

// expectObservations judges one expected alert: it reached the receiver while the
// faults were in place, and was resolved there after their removal. A fault held
// for less than the detection bound, or an alert already firing before the drill,
// is reported and not judged.
func expectObservations(e ExpectedAlert, got []AlertTime, win *Window, a Alerting, already bool, readErr string) []Observation {
	fire := Observation{What: e.String() + " reaches the receiver during the fault", Required: true}
	res := Observation{What: e.String() + " resolved at the receiver after the heal", Required: true}
	held := time.Duration(0)
	if win.Held != nil {
		held = time.Duration(float64(*win.Held) * float64(time.Second))
	}
	switch {
	case already:
		fire.OK, fire.Required, fire.Detail = true, false, "already firing before the drill: not judged"
		return []Observation{fire}
	case held < a.Detect:
		fire.OK, fire.Required = true, false
		fire.Detail = fmt.Sprintf("not expected: the fault held %.1fs, less than the detection bound %gs", held.Seconds(), a.Detect.Seconds())
		return []Observation{fire}
	}
	var t *AlertTime
	for i := range got {
		if got[i].Via == "receiver" && got[i].Alert == e.Name && got[i].Site == e.Site {
			t = &got[i]
			break
		}
	}
	switch {
	case t == nil && readErr != "":
		fire.Detail = "could not tell: " + readErr
	case t == nil:
		fire.Detail = "never reached " + a.Receiver
	case !win.RemoveAsked.IsZero() && t.Fired.After(win.RemoveAsked):
		fire.Detail = fmt.Sprintf("arrived only after the heal was asked (%.1fs after the cut)", float64(*t.FiredAfterCut))
	default:
		fire.OK = true
		fire.Detail = fmt.Sprintf("%.1fs after the fault took effect (bound %gs)", float64(*t.FiredAfterCut), a.Detect.Seconds())
	}
	if !fire.OK {
		return []Observation{fire}
	}
	if t.Resolved.IsZero() {
		res.Detail = fmt.Sprintf("no resolved notification within %gs of the heal", 2*a.Resolve.Seconds())
	} else {
		res.OK = true
		res.Detail = fmt.Sprintf("%.1fs after the heal (bound %gs)", float64(*t.ResolvedAfterHeal), a.Resolve.Seconds())
	}
	return []Observation{fire, res}
}
