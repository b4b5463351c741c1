package drill

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/htmlpage"
	"github.com/sitectl/sitectl/traffic"
)

//go:embed report.html.tmpl
var reportTemplate string

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"secs": func(s *Seconds) string {
		if s == nil {
			return "—"
		}
		return fmt.Sprintf("%.2f s", float64(*s))
	},
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"date":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":  strings.Join,
	"gap":   func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) },
	"pct":   func(ok, n int) string { return fmt.Sprintf("%.2f%%", 100*float64(ok)/float64(max(n, 1))) },
	"served": func(m map[string]int) string {
		parts := make([]string, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
		}
		return strings.Join(parts, ", ")
	},
	"style": func() template.CSS { return htmlpage.Style },
	"sides": func(ss [][]string) string {
		parts := make([]string, len(ss))
		for i, s := range ss {
			parts[i] = "{" + strings.Join(s, ", ") + "}"
		}
		return strings.Join(parts, " | ")
	},
}).Parse(reportTemplate))

// Timeline geometry (SVG user units).
const (
	svgWidth  = htmlpage.Width
	plotLeft  = htmlpage.PlotLeft
	plotRight = htmlpage.PlotRight
	laneTop   = 30
	laneH     = 22
	lagH      = 160
)

type svgEvent struct {
	X      float64
	Kind   string
	Label  string
	Title  string
	LabelY float64
}

type svgBar struct {
	X, W, Y float64
	Label   string
	Title   string
}

type svgLine struct {
	Flow    string
	Points  string
	Color   string
	LegendY float64
}

type timelineView struct {
	Width, Height       float64
	PlotLeft, PlotRight float64
	Windows             []svgBar // cut / outage windows
	Writes              []svgBar
	Events              []svgEvent
	Lag                 []svgLine
	LagTop, LagBottom   float64
	LagMax              string
	Ticks               []htmlpage.Tick
}

type htmlView struct {
	*Report
	Timeline timelineView
	Gaps     []siteGap
}

// siteGap is a site's longest time without a successful answer over the drill's
// phases (--load), and the phase it was in.
type siteGap struct {
	Site, Phase  string
	Gap          time.Duration
	OK, Requests int
}

func longestGaps(av []traffic.Availability) []siteGap {
	var out []siteGap
	at := map[string]int{}
	for _, a := range av {
		i, ok := at[a.Site]
		if !ok {
			i, at[a.Site] = len(out), len(out)
			out = append(out, siteGap{Site: a.Site, Phase: a.Phase, Gap: a.LongestGap})
		}
		g := &out[i]
		g.OK, g.Requests = g.OK+a.OK, g.Requests+a.Requests
		if a.LongestGap > g.Gap {
			g.Gap, g.Phase = a.LongestGap, a.Phase
		}
	}
	return out
}

var palette = htmlpage.Palette

// WriteHTML renders the report as one self-contained HTML page: summary, a timeline
// (cut window, writes per site, events, lag per flow over time) as inline SVG, and
// the verdict, preflight, heal and write tables.
func WriteHTML(w io.Writer, r *Report) error {
	return reportTmpl.Execute(w, htmlView{Report: r, Timeline: buildTimeline(r), Gaps: longestGaps(r.Availability)})
}

func buildTimeline(r *Report) timelineView {
	start, end := r.Started, r.Finished
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	span := end.Sub(start).Seconds()
	x := func(t time.Time) float64 {
		return round1(plotLeft + (t.Sub(start).Seconds()/span)*(plotRight-plotLeft))
	}
	tv := timelineView{Width: svgWidth, PlotLeft: plotLeft, PlotRight: plotRight}

	// Windows: each cut (or down) until its heal (or restore).
	open := map[string]time.Time{}
	y := float64(laneTop)
	for _, e := range r.Timeline {
		switch e.Kind {
		case EvCut, EvDown:
			open[e.Target] = e.At
		case EvHeal, EvHealFailed, EvRestore:
			if t, ok := open[e.Target]; ok {
				label := "cut " + e.Target
				if e.Kind == EvRestore {
					label = "down " + e.Target
				}
				tv.Windows = append(tv.Windows, svgBar{X: x(t), W: round1(x(e.At) - x(t)), Y: y, Label: label,
					Title: fmt.Sprintf("%s: %s → %s", label, t.UTC().Format("15:04:05.000"), e.At.UTC().Format("15:04:05.000"))})
				delete(open, e.Target)
				y += laneH
			}
		}
	}
	for target, t := range open { // never healed: runs to the end, drawn as such
		tv.Windows = append(tv.Windows, svgBar{X: x(t), W: round1(x(end) - x(t)), Y: y, Label: "cut " + target + " (NOT HEALED)",
			Title: "never healed"})
		y += laneH
	}
	for _, ws := range r.Writes {
		if ws.First.IsZero() {
			continue
		}
		tv.Writes = append(tv.Writes, svgBar{X: x(ws.First), W: round1(max(x(ws.Last)-x(ws.First), 1)), Y: y,
			Label: fmt.Sprintf("writes %s: %d/%d acked", ws.Site, ws.Acked, ws.Attempted),
			Title: fmt.Sprintf("%s wrote %d row(s), %d acknowledged, %d failed", ws.Site, ws.Attempted, ws.Acked, ws.Failed)})
		y += laneH
	}

	// Lag per flow.
	tv.LagTop = y + 20
	tv.LagBottom = tv.LagTop + lagH
	var maxLag int64 = 1
	flows := map[string][]LagSample{}
	for _, s := range r.Lag {
		flows[s.Flow] = append(flows[s.Flow], s)
		maxLag = max(maxLag, s.Bytes)
	}
	tv.LagMax = byteSize(maxLag)
	names := make([]string, 0, len(flows))
	for n := range flows {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		pts := make([]string, 0, len(flows[n]))
		for _, s := range flows[n] {
			ly := tv.LagBottom - float64(s.Bytes)/float64(maxLag)*lagH
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.At), ly))
		}
		tv.Lag = append(tv.Lag, svgLine{Flow: n, Points: strings.Join(pts, " "), Color: palette[i%len(palette)],
			LegendY: tv.LagTop + 12 + float64(i)*14})
	}

	// Events: markers over the whole height, labels staggered.
	tv.Height = tv.LagBottom + 60
	for i, e := range r.Timeline {
		title := e.Kind
		if e.Target != "" {
			title += " " + e.Target
		}
		label := title
		if e.Detail != "" {
			title += ": " + e.Detail
		}
		tv.Events = append(tv.Events, svgEvent{X: x(e.At), Kind: e.Kind, Label: label, Title: title,
			LabelY: tv.Height - 4 - float64(i%4)*12})
	}
	tv.Height += 10

	tv.Ticks = htmlpage.TimeTicks(span)
	return tv
}

func round1(f float64) float64 { return htmlpage.Round1(f) }
