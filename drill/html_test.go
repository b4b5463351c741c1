package drill

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sitectl/sitectl/internal/golden"
)

// sampleReport is a partition drill as Run builds it, at fixed instants.
func sampleReport(healed bool) *Report {
	t0 := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := &Report{Drill: "partition", Env: "lab", Run: "dr-0194a1b2-c3d4", Site: "douala",
		Links: []string{"douala-cloud"}, Sides: [][]string{{"cloud", "yaounde"}, {"douala"}}, Started: at(0),
		Settings: ReportSetting{Duration: 10, Writes: 1000}}
	r.Preflight = []Check{{Name: "database douala", Passed: true, Detail: "reachable"}, {Name: "flow douala→cloud", Passed: true, Detail: "streaming, lag 0 bytes"}}
	r.Timeline = []Event{
		{At: at(0.4), Kind: EvPreflight, Detail: "2 check(s) passed"},
		{At: at(0.5), Kind: EvCut, Target: "douala-cloud"},
		{At: at(0.5), Kind: EvWritesStart, Detail: "1000 per site"},
		{At: at(8.6), Kind: EvWritesEnd, Detail: "3000 of 3000 acknowledged"},
	}
	r.Writes = []WriteStats{
		{Site: "cloud", Attempted: 1000, Acked: 1000, First: at(0.5), Last: at(8.5)},
		{Site: "douala", Attempted: 1000, Acked: 1000, First: at(0.5), Last: at(8.6)},
		{Site: "yaounde", Attempted: 1000, Acked: 1000, First: at(0.5), Last: at(8.4)},
	}
	for i := 0; i <= 28; i++ {
		s := float64(i) * 0.5
		var lag int64
		if s > 0.5 && s < 12 {
			lag = int64((min(s, 10.5) - 0.5) * 60000)
		}
		state := StateStreaming
		if s > 0.5 && s < 11 {
			state = StateDown
		}
		r.Lag = append(r.Lag, LagSample{At: at(s), Flow: "douala→cloud", Bytes: lag, State: state},
			LagSample{At: at(s), Flow: "cloud→douala", Bytes: lag / 2, State: state})
	}
	if healed {
		r.Heal = []HealResult{{Link: "douala-cloud", Healed: true, Attempts: 1}}
		r.Timeline = append(r.Timeline,
			Event{At: at(10.5), Kind: EvHeal, Target: "douala-cloud", Detail: "healed (1 try)"},
			Event{At: at(12.8), Kind: EvCaughtUp, Detail: "every flow streaming with zero lag"},
			Event{At: at(13.0), Kind: EvConverged, Detail: "2.50s after the heal"},
			Event{At: at(13.2), Kind: EvVerified, Detail: "lost=0 duplicated=0 collisions=0"})
		r.Converged, r.HealToCaughtUp, r.HealToConverged = true, Secs(2300*time.Millisecond), Secs(2500*time.Millisecond)
		v := Verify(VerifyInput{Place: FlowPlacement(hubAndSpoke)})
		v.Acked = 3000
		r.Verdict = &v
	} else {
		r.Heal = []HealResult{{Link: "douala-cloud", Healed: false, Attempts: 5, Error: "vici: connection refused"}}
		r.HealFailed = true
		r.Timeline = append(r.Timeline, Event{At: at(10.5), Kind: EvHealFailed, Target: "douala-cloud", Detail: "after 5 tries"})
		r.Error = "heal failed: see the heal table; the links are still cut"
	}
	r.finish(at(14))
	return r
}

// find returns the elements with the tag whose attributes include all of attrs
// (class matches one word of the class attribute).
func find(n *html.Node, tag string, attrs map[string]string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag && hasAttrs(n, attrs) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func hasAttrs(n *html.Node, want map[string]string) bool {
	for k, v := range want {
		ok := false
		for _, a := range n.Attr {
			if a.Key != k {
				continue
			}
			if k == "class" {
				for _, w := range strings.Fields(a.Val) {
					ok = ok || w == v
				}
			} else {
				ok = a.Val == v
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestHTMLReportTimeline(t *testing.T) {
	r := sampleReport(true)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "partition.golden.html", buf.Bytes())

	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	svgs := find(doc, "svg", map[string]string{"id": "timeline"})
	if len(svgs) != 1 {
		t.Fatalf("%d svg#timeline, want 1", len(svgs))
	}
	svg := svgs[0]
	windows := find(svg, "rect", map[string]string{"class": "cut-window"})
	if len(windows) != 1 {
		t.Fatalf("%d cut windows, want 1", len(windows))
	}
	// The cut window spans cut (0.5 s) to heal (10.5 s) of a 14 s drill on 860 units.
	if x, w := attr(windows[0], "x"), attr(windows[0], "width"); x != "100.7" || w != "614.3" {
		t.Errorf("cut window x=%s width=%s, want 100.7 and 614.3", x, w)
	}
	for _, kind := range []string{EvCut, EvHeal, EvWritesStart, EvWritesEnd, EvCaughtUp, EvConverged, EvVerified} {
		if n := len(find(svg, "line", map[string]string{"data-kind": kind})); n != 1 {
			t.Errorf("%d %q markers on the timeline, want 1", n, kind)
		}
	}
	if n := len(find(svg, "rect", map[string]string{"class": "writes"})); n != 3 {
		t.Errorf("%d write bars, want 3 (one per site)", n)
	}
	lags := find(svg, "polyline", map[string]string{"class": "lag"})
	if len(lags) != 2 {
		t.Fatalf("%d lag curves, want 2 (one per flow)", len(lags))
	}
	for _, l := range lags {
		if pts := strings.Fields(attr(l, "points")); len(pts) != 29 {
			t.Errorf("lag %s has %d points, want 29 samples", attr(l, "data-flow"), len(pts))
		}
	}
	rows := find(doc, "tr", map[string]string{"data-check": "lost"})
	if len(rows) != 1 {
		t.Fatal("no verdict row for lost")
	}
	if len(find(doc, "p", map[string]string{"id": "heal-failed"})) != 0 {
		t.Error("a healed drill shows the heal-failed alarm")
	}
}

func TestHTMLReportHealFailed(t *testing.T) {
	r := sampleReport(false)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "heal-failed.golden.html", buf.Bytes())
	doc, err := html.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(find(doc, "p", map[string]string{"id": "heal-failed"})) != 1 {
		t.Fatal("the heal-failed alarm is missing")
	}
	windows := find(doc, "rect", map[string]string{"class": "cut-window"})
	if len(windows) != 1 || len(find(doc, "line", map[string]string{"data-kind": EvHealFailed})) != 1 {
		t.Fatal("the failed heal is not on the timeline")
	}
	if r.Passed {
		t.Fatal("a drill whose heal failed passed")
	}
}

func TestReportJSON(t *testing.T) {
	r := sampleReport(true)
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "partition.golden.json", append(b, '\n'))
	if !r.Passed {
		t.Fatalf("sample report did not pass: %s", r.Summary())
	}
}
