package traffic

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/htmlpage"
)

// Report is one `sitectl load` run: its settings and each site's figures (what
// `-o json` prints and --report renders).
type Report struct {
	Rate     int           `json:"rate"`
	Duration time.Duration `json:"duration_ns"`
	Mix      string        `json:"mix"`
	Started  time.Time     `json:"started,omitzero"`
	Sites    []Result      `json:"sites"`
}

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("load").Funcs(template.FuncMap{
	"style": func() template.CSS { return htmlpage.Style },
	"ms":    func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) },
	"pct":   func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
	"date":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"kinds": func(r Result) string { return kinds(r.Errors, r.ErrKinds()) },
	"served": func(r Result) string {
		return kinds(r.ServedBy, slices.Sorted(maps.Keys(r.ServedBy)))
	},
}).Parse(reportTemplate))

// Latency chart geometry (SVG user units), below the time axis at y 20.
const (
	chartTop = 30
	chartH   = 180
	failH    = 14 // the lane of slices with failed requests, under the chart
)

type latencyLine struct {
	Name, Color, Points string
	LegendY             float64
}

type failMark struct {
	X, W  float64
	Title string
}

type siteChart struct {
	Result
	Width, Height       float64
	PlotLeft, PlotRight float64
	Top, Bottom, FailY  float64
	YMax                string
	Lines               []latencyLine
	Fails               []failMark
	Ticks               []htmlpage.Tick
}

type loadView struct {
	*Report
	Charts []siteChart
}

// WriteHTML renders the run as one self-contained HTML page (the drill report's
// look): the settings, then per site its latency over time (p50 and p99 per slice,
// inline SVG, slices with failed requests marked red) and the summary table.
func WriteHTML(w io.Writer, r *Report) error {
	v := loadView{Report: r}
	for _, s := range r.Sites {
		v.Charts = append(v.Charts, chart(s))
	}
	return reportTmpl.Execute(w, v)
}

func chart(r Result) siteChart {
	width := r.BucketWidth
	if width <= 0 {
		width = time.Second
	}
	span := max((time.Duration(len(r.Buckets)) * width).Seconds(), 1)
	c := siteChart{Result: r, Width: htmlpage.Width, PlotLeft: htmlpage.PlotLeft, PlotRight: htmlpage.PlotRight,
		Top: chartTop, Bottom: chartTop + chartH, Ticks: htmlpage.TimeTicks(span)}
	c.FailY = c.Bottom + 6
	c.Height = c.FailY + failH + 10
	x := func(t time.Duration) float64 {
		return htmlpage.Round1(htmlpage.PlotLeft + t.Seconds()/span*(htmlpage.PlotRight-htmlpage.PlotLeft))
	}
	yMax := time.Millisecond
	for _, b := range r.Buckets {
		yMax = max(yMax, b.P99)
	}
	c.YMax = fmt.Sprintf("%.1f ms", float64(yMax)/float64(time.Millisecond))
	y := func(d time.Duration) float64 { return htmlpage.Round1(c.Bottom - float64(d)/float64(yMax)*chartH) }
	for i, q := range []struct {
		name string
		of   func(Bucket) time.Duration
	}{{"p50", func(b Bucket) time.Duration { return b.P50 }}, {"p99", func(b Bucket) time.Duration { return b.P99 }}} {
		var pts []string
		for _, b := range r.Buckets {
			if b.Requests > 0 { // a slice with no request has no latency: no point
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(b.Start+width/2), y(q.of(b))))
			}
		}
		c.Lines = append(c.Lines, latencyLine{Name: q.name, Color: htmlpage.Palette[i], Points: strings.Join(pts, " "),
			LegendY: c.Top + 12 + float64(i)*14})
	}
	for _, b := range r.Buckets {
		if b.OK < b.Requests {
			c.Fails = append(c.Fails, failMark{X: x(b.Start), W: htmlpage.Round1(x(b.Start+width) - x(b.Start)),
				Title: fmt.Sprintf("%gs: %d of %d failed", b.Start.Seconds(), b.Requests-b.OK, b.Requests)})
		}
	}
	return c
}

func kinds(m map[string]int, keys []string) string {
	if s := kindList(m, keys); s != "" {
		return s
	}
	return "—"
}
