package siteloss

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/sitectl/sitectl/internal/htmlpage"
)

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("siteloss").Funcs(template.FuncMap{
	"style": func() template.CSS { return htmlpage.Style },
	"date":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"dur":   func(d time.Duration) string { return d.Round(time.Millisecond).String() },
}).Parse(reportTemplate))

type phaseBar struct {
	X, W, Y      float64
	Class, Label string
	Title        string
}

type ackRow struct {
	Site string
	N    int
}

type verifiedRow struct {
	Table, Owner string
	Sums         []string
	Equal        bool
}

type page struct {
	R                   *Report
	Width, Height       int
	PlotLeft, PlotRight float64
	Ticks               []htmlpage.Tick
	Phases              []phaseBar
	Acked               []ackRow
	Sites               []string
	Verified            []verifiedRow
}

// WriteHTML writes the report as a self-contained HTML page: the verdict, RTO and
// RPO, a timeline of the drill's phases, the acknowledged writes, the rows the
// rebuild copied, the verification per table and owner and, when the old instance
// was brought back, its fencing and reconcile.
func (r *Report) WriteHTML(w io.Writer) error {
	p := page{R: r, Width: htmlpage.Width, PlotLeft: htmlpage.PlotLeft, PlotRight: htmlpage.PlotRight}
	for _, s := range slices.Sorted(maps.Keys(r.Acknowledged)) {
		p.Acked = append(p.Acked, ackRow{s, r.Acknowledged[s]})
	}
	if len(r.Verified) > 0 {
		p.Sites = slices.Sorted(maps.Keys(r.Verified[0].Sums))
		for _, v := range r.Verified {
			row := verifiedRow{Table: v.Table, Owner: v.Owner, Equal: v.Equal}
			for _, s := range p.Sites {
				row.Sums = append(row.Sums, v.Sums[s].String())
			}
			p.Verified = append(p.Verified, row)
		}
	}
	p.timeline()
	return reportTmpl.Execute(w, p)
}

// timeline lays the drill's phases out on one time axis, one lane each.
func (p *page) timeline() {
	r := p.R
	type span struct {
		from, to     time.Time
		class, label string
	}
	end := r.VerifiedAt
	if end.IsZero() {
		end = r.LostAt
	}
	spans := []span{
		{r.Started, r.LostAt, "writes", "writes at every site"},
		{r.LostAt, r.ReplacedAt, "lost", r.Site + " lost; the others write on"},
		{r.ReplacedAt, r.VerifiedAt, "rebuild", "rebuild and verification"},
	}
	if m := r.Mongo; m != nil {
		spans = append(spans, span{m.LostAt, m.RebuiltAt, "mongo", "MongoDB members lost → caught up and voting"})
		if m.RebuiltAt.After(end) {
			end = m.RebuiltAt
		}
	}
	if o := r.OldReturn; o != nil {
		spans = append(spans, span{o.ReturnedAt, o.ReconciledAt, "old", "old instance back: fenced, reconciled"})
		end = o.ReconciledAt
	}
	span0 := max(end.Sub(r.Started).Seconds(), 0.001)
	x := func(t time.Time) float64 {
		return htmlpage.Round1(p.PlotLeft + t.Sub(r.Started).Seconds()/span0*(p.PlotRight-p.PlotLeft))
	}
	p.Ticks = htmlpage.TimeTicks(span0)
	y := 30.0
	for _, s := range spans {
		if s.from.IsZero() || s.to.IsZero() || s.to.Before(s.from) {
			continue
		}
		p.Phases = append(p.Phases, phaseBar{X: x(s.from), W: max(htmlpage.Round1(x(s.to)-x(s.from)), 1), Y: y, Class: s.class, Label: s.label,
			Title: fmt.Sprintf("%s: %s – %s (%.1f s)", s.label, s.from.UTC().Format("15:04:05.000"), s.to.UTC().Format("15:04:05.000"), s.to.Sub(s.from).Seconds())})
		y += 24
	}
	p.Height = int(y) + 10
}
