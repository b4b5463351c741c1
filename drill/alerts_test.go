package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAlerting is Alertmanager and the receiver: the fault, once in place, makes
// TunnelDown{site=douala} notified after fireAfter (never when negative) and holds
// an inhibited SubscriptionSilent; its removal resolves both after resolveAfter.
type fakeAlerting struct {
	mu           sync.Mutex
	fireAfter    time.Duration
	resolveAfter time.Duration
	got          []Notified
	inhibited    bool
	// unInhibit: the inhibited alert still fires when TunnelDown resolves.
	unInhibit bool
}

func (f *fakeAlerting) Received(context.Context) ([]Notified, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Notified(nil), f.got...), nil
}

func (f *fakeAlerting) Held(context.Context) ([]Held, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// An alert that fired long before the drill, and still does.
	old := Held{Name: "ServiceReplicasBelowDesired", Site: "cloud", State: "active", Labels: map[string]string{"service": "kong_kong"}}
	if !f.inhibited {
		return []Held{old}, nil
	}
	return []Held{old, {Name: "SubscriptionSilent", Site: "cloud", State: "suppressed", InhibitedBy: []string{"x"},
		Labels: map[string]string{"subname": "sitectl_douala_to_cloud"}}}, nil
}

func (f *fakeAlerting) notify(status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, Notified{At: time.Now(), Name: "TunnelDown", Site: "douala", Status: status,
		Labels: map[string]string{"alertname": "TunnelDown", "site": "douala", "link": "douala-cloud"}},
		// A notification repeating the old alert (its group changed): not the drill's.
		Notified{At: time.Now(), Name: "ServiceReplicasBelowDesired", Site: "cloud", Status: "firing",
			Labels: map[string]string{"alertname": "ServiceReplicasBelowDesired", "site": "cloud", "service": "kong_kong"}})
	f.inhibited = status == "firing"
	if status == "resolved" && f.unInhibit {
		// TunnelDown resolved: the replication alert it inhibited is notified.
		f.got = append(f.got, Notified{At: time.Now(), Name: "SubscriptionSilent", Site: "cloud", Status: "firing",
			Labels: map[string]string{"alertname": "SubscriptionSilent", "site": "cloud", "subname": "sitectl_douala_to_cloud"}})
	}
}

// fault is the cut the fake reacts to.
func (f *fakeAlerting) fault() *funcFault {
	return &funcFault{name: "douala-cloud",
		inject: func(context.Context) error {
			if f.fireAfter >= 0 {
				time.AfterFunc(f.fireAfter, func() { f.notify("firing") })
			}
			return nil
		},
		remove: func(context.Context) error {
			f.mu.Lock()
			fired := len(f.got) > 0
			f.mu.Unlock()
			if fired {
				time.AfterFunc(f.resolveAfter, func() { f.notify("resolved") })
			}
			return nil
		}}
}

func alertDrill(t *testing.T, f *fakeAlerting, d time.Duration) *Report {
	t.Helper()
	p, _ := testDrill(f.fault(), map[string]*memStore{"cloud": {}, "douala": {}},
		Settings{Duration: d, Writes: 5, Converge: 5 * time.Second, Sample: 10 * time.Millisecond})
	p.Alerting = Alerting{Reader: f, Receiver: "test receiver", Expect: []ExpectedAlert{{Name: "TunnelDown", Site: "douala"}},
		Detect: 300 * time.Millisecond, Resolve: 400 * time.Millisecond}
	return p.Run(context.Background())
}

func observation(rep *Report, prefix string) (Observation, bool) {
	for _, o := range rep.Observations {
		if strings.HasPrefix(o.What, prefix) {
			return o, true
		}
	}
	return Observation{}, false
}

// TestDrillSeesAlertsFireAndResolve: the alert a cut raises reaches the receiver
// during the cut and resolves after the heal; the report has both times relative to
// the cut and the heal, the timeline has both events, and the replication alert
// Alertmanager held back (inhibited) is listed from Alertmanager.
func TestDrillSeesAlertsFireAndResolve(t *testing.T) {
	f := &fakeAlerting{fireAfter: 150 * time.Millisecond, resolveAfter: 100 * time.Millisecond}
	rep := alertDrill(t, f, 600*time.Millisecond)
	if !rep.Passed {
		t.Fatalf("drill failed: %s; observations %+v; alerts %+v", rep.Summary(), rep.Observations, rep.Alerts)
	}
	a := rep.Alerts
	if a == nil || len(a.Alerts) != 2 {
		t.Fatalf("alerts in the report: %+v", a)
	}
	td, inh := a.Alerts[0], a.Alerts[1]
	if td.Name() != "TunnelDown{site=douala, link=douala-cloud}" || td.Via != "receiver" || !td.Expected ||
		td.FiredAfterCut == nil || *td.FiredAfterCut < 0.1 || *td.FiredAfterCut > 0.5 ||
		td.ResolvedAfterHeal == nil || *td.ResolvedAfterHeal < 0.05 || *td.ResolvedAfterHeal > 0.5 {
		t.Errorf("TunnelDown row: %+v (fired %v, resolved %v)", td, secs(td.FiredAfterCut), secs(td.ResolvedAfterHeal))
	}
	if inh.Alert != "SubscriptionSilent" || inh.Via != "alertmanager" || !inh.InhibitedBy || inh.Expected || inh.Key != "subname=sitectl_douala_to_cloud" {
		t.Errorf("inhibited row: %+v", inh)
	}
	for _, what := range []string{"TunnelDown{site=douala} reaches the receiver", "TunnelDown{site=douala} resolved at the receiver"} {
		if o, ok := observation(rep, what); !ok || !o.OK || !o.Required {
			t.Errorf("observation %q: %+v (present %v)", what, o, ok)
		}
	}
	kinds := map[string]bool{}
	for _, e := range rep.Timeline {
		kinds[e.Kind] = true
	}
	if !kinds[EvAlertFiring] || !kinds[EvAlertResolved] {
		t.Errorf("timeline lacks the alert events: %+v", rep.Timeline)
	}
	b, _ := json.Marshal(rep)
	for _, want := range []string{`"fired_after_cut_s":`, `"resolved_after_heal_s":`, `"via":"alertmanager"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("JSON report lacks %s", want)
		}
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, rep); err != nil || !strings.Contains(page.String(), `id="alerts"`) ||
		!strings.Contains(page.String(), "TunnelDown{site=douala, link=douala-cloud}") {
		t.Errorf("the HTML report has no alerts table (%v)", err)
	}
}

func secs(s *Seconds) float64 {
	if s == nil {
		return -1
	}
	return float64(*s)
}

// TestDrillInhibitedThenNotified: a replication alert Alertmanager held back
// (inhibited) during the cut and notified once TunnelDown resolved is one row, from
// the receiver, that says it was inhibited and since when Alertmanager held it.
func TestDrillInhibitedThenNotified(t *testing.T) {
	f := &fakeAlerting{fireAfter: 100 * time.Millisecond, resolveAfter: 50 * time.Millisecond, unInhibit: true}
	rep := alertDrill(t, f, 600*time.Millisecond)
	if !rep.Passed || rep.Alerts == nil || len(rep.Alerts.Alerts) != 2 {
		t.Fatalf("%s; alerts %+v", rep.Summary(), rep.Alerts)
	}
	r := rep.Alerts.Alerts[1]
	if r.Alert != "SubscriptionSilent" || r.Via != "receiver" || !r.InhibitedBy || r.HeldAfterCut == nil || r.FiredAfterCut == nil ||
		*r.HeldAfterCut >= *r.FiredAfterCut || *r.FiredAfterCut < 0.6 {
		t.Errorf("row of the alert inhibited, then notified: %+v (held %v, notified %v)", r, secs(r.HeldAfterCut), secs(r.FiredAfterCut))
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, rep); err != nil || !strings.Contains(page.String(), "receiver (inhibited in Alertmanager from +") {
		t.Errorf("the HTML report does not say the alert was inhibited before it was notified (%v)", err)
	}
}

// TestDrillFailsWhenTheAlertNeverArrives: a cut held past the detection bound
// whose alert never reaches the receiver fails the drill and says so.
func TestDrillFailsWhenTheAlertNeverArrives(t *testing.T) {
	rep := alertDrill(t, &fakeAlerting{fireAfter: -1}, 500*time.Millisecond)
	o, ok := observation(rep, "TunnelDown{site=douala} reaches the receiver")
	if rep.Passed || !ok || o.OK || !strings.Contains(o.Detail, "never reached test receiver") {
		t.Fatalf("want a failed drill naming the missing alert: %s; %+v", rep.Summary(), o)
	}
}

// TestDrillShortCutExpectsNoAlert: a cut shorter than the detection bound judges
// nothing (and passes).
func TestDrillShortCutExpectsNoAlert(t *testing.T) {
	rep := alertDrill(t, &fakeAlerting{fireAfter: -1}, 100*time.Millisecond)
	o, ok := observation(rep, "TunnelDown{site=douala}")
	if !rep.Passed || !ok || o.Required || !strings.Contains(o.Detail, "not expected: the fault held") {
		t.Fatalf("%s; %+v", rep.Summary(), o)
	}
}

// TestDrillWithoutMonitoringSaysSo: with no reader, the note is in the report and
// an observation; the drill is judged on its data alone.
func TestDrillWithoutMonitoringSaysSo(t *testing.T) {
	p, _ := testDrill(&funcFault{name: "douala-cloud"}, map[string]*memStore{"cloud": {}, "douala": {}},
		Settings{Duration: 50 * time.Millisecond, Writes: 2, Converge: 5 * time.Second, Sample: 10 * time.Millisecond})
	p.Alerting = Alerting{Note: "the monitoring stack is not deployed at cloud"}
	rep := p.Run(context.Background())
	o, ok := observation(rep, "alerting path watched")
	if !rep.Passed || rep.Alerts == nil || rep.Alerts.Note == "" || !ok || !strings.Contains(o.Detail, "not deployed at cloud") {
		t.Fatalf("%s; alerts %+v; %+v", rep.Summary(), rep.Alerts, o)
	}
}
