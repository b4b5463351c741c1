package drill

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/internal/htmlpage"
	"github.com/sitectl/sitectl/traffic"
)

// sampleAvailability is what douala's and cloud's clients saw during a partition
// drill with --load: douala's longest gap is during the cut, cloud's after it.
func sampleAvailability() []traffic.Availability {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	return []traffic.Availability{
		{Site: "douala", Phase: "before", Requests: 10, OK: 10, Success: 1, LongestGap: ms(180), ServedBy: map[string]int{"douala": 10}},
		{Site: "douala", Phase: "during", Requests: 200, OK: 198, Success: 0.99, LongestGap: ms(2350), ServedBy: map[string]int{"douala": 190, "yaounde": 8}},
		{Site: "douala", Phase: "after", Requests: 70, OK: 70, Success: 1, LongestGap: ms(140), ServedBy: map[string]int{"douala": 70}},
		{Site: "cloud", Phase: "before", Requests: 10, OK: 10, Success: 1, LongestGap: ms(150), ServedBy: map[string]int{"cloud": 10}},
		{Site: "cloud", Phase: "during", Requests: 200, OK: 200, Success: 1, LongestGap: ms(120), ServedBy: map[string]int{"cloud": 200}},
		{Site: "cloud", Phase: "after", Requests: 70, OK: 69, Success: 69.0 / 70, LongestGap: ms(1010), ServedBy: map[string]int{"cloud": 69}},
	}
}

func TestHTMLReportAvailability(t *testing.T) {
	r := sampleReport(true)
	r.Availability = sampleAvailability()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "partition-load.golden.html", buf.Bytes())
	if err := availabilityShown(buf.Bytes(), r.Availability); err != nil {
		t.Fatal(err)
	}
	refs, err := htmlpage.ExternalRefs(bytes.NewReader(buf.Bytes()))
	if err != nil || len(refs) != 0 {
		t.Fatalf("the drill report refers outside itself: %q (%v)", refs, err)
	}

	// A drill without --load has no availability section; the check then fails.
	buf.Reset()
	if err := WriteHTML(&buf, sampleReport(true)); err != nil {
		t.Fatal(err)
	}
	if err := availabilityShown(buf.Bytes(), sampleAvailability()); err == nil {
		t.Fatal("a report without availability passed the check")
	}
	// One site's phases missing from the report: the check names it.
	buf.Reset()
	r.Availability = sampleAvailability()[:3]
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	if err := availabilityShown(buf.Bytes(), sampleAvailability()); err == nil || !strings.Contains(err.Error(), "cloud") {
		t.Fatalf("a report without cloud's availability passed the check (%v)", err)
	}
}

// availabilityShown checks the page has a row per site and phase of av with its
// counts and gap, and per site its longest gap over the phases and that phase.
func availabilityShown(page []byte, av []traffic.Availability) error {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return err
	}
	longest := map[string]traffic.Availability{}
	for _, a := range av {
		rows := find(doc, "tr", map[string]string{"data-site": a.Site, "data-phase": a.Phase})
		if len(rows) != 1 {
			return fmt.Errorf("site %s phase %s: %d availability rows, want 1", a.Site, a.Phase, len(rows))
		}
		if got, want := cells(rows[0]), []string{a.Site, a.Phase, itoa(a.OK) + "/" + itoa(a.Requests), pctOf(a.OK, a.Requests), secs2(a.LongestGap)}; !prefix(got, want) {
			return fmt.Errorf("site %s phase %s: row %q, want it to start %q", a.Site, a.Phase, got, want)
		}
		if l, ok := longest[a.Site]; !ok || a.LongestGap > l.LongestGap {
			longest[a.Site] = a
		}
	}
	for site, l := range longest {
		tables := find(doc, "table", map[string]string{"id": "longest-gap"})
		if len(tables) != 1 {
			return fmt.Errorf("no longest-gap table (site %s)", site)
		}
		rows := find(tables[0], "tr", map[string]string{"data-site": site})
		if len(rows) != 1 {
			return fmt.Errorf("site %s: %d longest-gap rows, want 1", site, len(rows))
		}
		got := cells(rows[0])
		if len(got) != 5 || got[3] != secs2(l.LongestGap) || got[4] != l.Phase {
			return fmt.Errorf("site %s: longest-gap row %q, want gap %s in phase %s", site, got, secs2(l.LongestGap), l.Phase)
		}
	}
	return nil
}

func cells(tr *html.Node) []string {
	var out []string
	for td := tr.FirstChild; td != nil; td = td.NextSibling {
		if td.Type == html.ElementNode && td.Data == "td" {
			var b strings.Builder
			for c := td.FirstChild; c != nil; c = c.NextSibling {
				if c.Type == html.TextNode {
					b.WriteString(c.Data)
				}
			}
			out = append(out, b.String())
		}
	}
	return out
}

func prefix(got, want []string) bool {
	if len(got) < len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func itoa(n int) string            { return fmt.Sprint(n) }
func pctOf(ok, n int) string       { return fmt.Sprintf("%.2f%%", 100*float64(ok)/float64(n)) }
func secs2(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// TestHTMLReportAPIWrites: a drill with --load shows the verification of the
// writes made through the API; one without has no such section.
func TestHTMLReportAPIWrites(t *testing.T) {
	r := sampleReport(true)
	r.Availability = sampleAvailability()
	r.AddAPIWrites(Verify(VerifyInput{Place: func(o, s string) bool { return o == s },
		Attempts: []Attempt{{Row: Row{Site: "douala"}, At: "douala", Acked: true}}, Holdings: map[string][]Row{"douala": {}}}))
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(find(doc, "table", map[string]string{"id": "api-writes"})); n != 1 || !strings.Contains(buf.String(), `lost <b id="api-lost">1</b>`) {
		t.Fatalf("%d API writes tables, want 1 saying lost 1", n)
	}
	if r.Passed {
		t.Error("a lost write through the API left the drill passed")
	}
	buf.Reset()
	if err := WriteHTML(&buf, sampleReport(true)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "api-writes") {
		t.Error("a drill without --load shows an API writes section")
	}
}
