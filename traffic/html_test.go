package traffic

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/internal/htmlpage"
)

// sampleLoad is a 10 s run at two sites: douala steady, yaounde with a 3 s outage
// (timeouts and 503s, failover to cloud) and a second with no request at all.
func sampleLoad() *Report {
	r := &Report{Rate: 50, Duration: 10 * time.Second, Mix: "9:1", Started: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	d := Result{Site: "douala", Requests: 500, Rate: 50, Throughput: 50, Success: 1, P50: ms(12), P90: ms(20), P99: ms(41), Max: ms(63),
		Errors: map[string]int{}, ServedBy: map[string]int{"douala": 500}, BucketWidth: time.Second}
	y := Result{Site: "yaounde", Requests: 450, Rate: 45, Throughput: 36.5, Success: 0.8111, P50: ms(15), P90: ms(2100), P99: ms(9800), Max: ms(10000),
		Errors: map[string]int{"timeout": 40, "http 503": 45}, ServedBy: map[string]int{"yaounde": 300, "cloud": 65}, BucketWidth: time.Second}
	for i := range 10 {
		at := time.Duration(i) * time.Second
		d.Buckets = append(d.Buckets, Bucket{Start: at, Requests: 50, OK: 50, P50: ms(10 + float64(i%3)), P99: ms(30 + float64(i)), Max: ms(40 + float64(i))})
		b := Bucket{Start: at, Requests: 50, OK: 50, P50: ms(14), P99: ms(35), Max: ms(50)}
		switch {
		case i == 6:
			b = Bucket{Start: at}
		case i >= 3 && i < 6:
			b = Bucket{Start: at, Requests: 50, OK: 50 - 25 - i, P50: ms(1800), P99: ms(9800), Max: ms(10000)}
		}
		y.Buckets = append(y.Buckets, b)
	}
	r.Sites = []Result{d, y}
	return r
}

func render(t *testing.T, r *Report) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHTMLReport(t *testing.T) {
	r := sampleLoad()
	page := render(t, r)
	golden.Assert(t, "load.golden.html", page)
	if err := siteData(page, r); err != nil {
		t.Fatal(err)
	}
	// yaounde: three slices with failures, the empty slice has no point.
	doc, _ := html.Parse(bytes.NewReader(page))
	y := elems(doc, "svg", "data-site", "yaounde")[0]
	if n := len(elems(y, "rect", "class", "fail-slice")); n != 3 {
		t.Errorf("yaounde: %d failed slices marked, want 3", n)
	}
	// p99 9.8 s is the top of yaounde's chart (y 30); douala's p99 39 ms is the top of its own.
	p99 := strings.Fields(attr(elems(y, "polyline", "data-quantile", "p99")[0], "points"))
	if p99[3] != "371.0,30.0" {
		t.Errorf("yaounde p99 at 3.5 s drawn at %s, want 371.0,30.0", p99[3])
	}
}

// TestHTMLReportSelfContained: no stylesheet, script, font or image from elsewhere.
func TestHTMLReportSelfContained(t *testing.T) {
	refs, err := htmlpage.ExternalRefs(bytes.NewReader(render(t, sampleLoad())))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Fatalf("the load report refers outside itself: %q", refs)
	}
}

// TestHTMLReportEverySite: each site's chart and row hold its own figures; the check
// fails on a page that lost a site's data or showed another's.
func TestHTMLReportEverySite(t *testing.T) {
	r := sampleLoad()
	if err := siteData(render(t, r), r); err != nil {
		t.Fatal(err)
	}
	bad := sampleLoad()
	bad.Sites[1].Buckets = nil
	if err := siteData(render(t, bad), r); err == nil || !strings.Contains(err.Error(), "yaounde") {
		t.Fatalf("a page without yaounde's latency over time passed the check (%v)", err)
	}
	bad = sampleLoad()
	bad.Sites = bad.Sites[:1]
	if err := siteData(render(t, bad), r); err == nil || !strings.Contains(err.Error(), "yaounde") {
		t.Fatalf("a page without yaounde passed the check (%v)", err)
	}
}

// siteData checks that page shows every site of want: a summary row with its
// requests and p99, and a chart with one p50 and one p99 point per slice with requests.
func siteData(page []byte, want *Report) error {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return err
	}
	for _, s := range want.Sites {
		rows := elems(doc, "tr", "data-site", s.Site)
		if len(rows) != 1 {
			return fmt.Errorf("site %s: %d summary rows, want 1", s.Site, len(rows))
		}
		cells := textOf(rows[0])
		if !strings.Contains(cells, "|"+strconv.FormatUint(s.Requests, 10)+"|") || !strings.Contains(cells, fmt.Sprintf("%.1f ms", float64(s.P99)/float64(time.Millisecond))) {
			return fmt.Errorf("site %s: summary row %q lacks its requests %d or p99", s.Site, cells, s.Requests)
		}
		charts := elems(doc, "svg", "data-site", s.Site)
		if len(charts) != 1 {
			return fmt.Errorf("site %s: %d latency charts, want 1", s.Site, len(charts))
		}
		withRequests := 0
		for _, b := range s.Buckets {
			if b.Requests > 0 {
				withRequests++
			}
		}
		for _, q := range []string{"p50", "p99"} {
			lines := elems(charts[0], "polyline", "data-quantile", q)
			if len(lines) != 1 {
				return fmt.Errorf("site %s: %d %s lines, want 1", s.Site, len(lines), q)
			}
			if n := len(strings.Fields(attr(lines[0], "points"))); n != withRequests || n == 0 {
				return fmt.Errorf("site %s: %s line has %d points, want %d (one per slice with requests)", s.Site, q, n, withRequests)
			}
		}
	}
	return nil
}

// elems returns the elements with the tag whose attribute key is val (a word of it
// for class).
func elems(n *html.Node, tag, key, val string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			v := attr(n, key)
			if v == val || (key == "class" && strings.Contains(" "+v+" ", " "+val+" ")) {
				out = append(out, n)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// textOf is the text of a row's cells, each between bars: |douala|500|….
func textOf(tr *html.Node) string {
	var b strings.Builder
	b.WriteString("|")
	for td := tr.FirstChild; td != nil; td = td.NextSibling {
		if td.Type != html.ElementNode {
			continue
		}
		for c := td.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.TextNode {
				b.WriteString(c.Data)
			}
		}
		b.WriteString("|")
	}
	return b.String()
}
