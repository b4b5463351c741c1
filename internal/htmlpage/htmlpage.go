// Package htmlpage holds what sitectl's self-contained HTML reports share (the drill
// report, the load report): the base style, the colour palette and the time axis of
// their inline SVG charts. The pages use no external asset.
package htmlpage

import (
	"fmt"
	"html/template"
)

// Style is the base CSS of every report page (tables, pass/fail colours, the alarm
// banner, SVG text); a page appends its own rules after it.
const Style template.CSS = `body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 .pass, td.pass { color: #1a7f37; } h1 .fail, td.fail { color: #c62828; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.alarm { background: #c62828; color: #fff; padding: 0.8em; font-weight: bold; font-size: 1.2em; }
svg text { font-size: 11px; }
`

// Palette colours the lines of a chart, one per series in order.
var Palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// Chart geometry shared by the pages (SVG user units): the plot spans PlotLeft to
// PlotRight of a Width-wide picture.
const (
	Width     = 960
	PlotLeft  = 70
	PlotRight = 930
)

// Tick is one mark of a time axis.
type Tick struct {
	X     float64
	Label string
}

// TimeTicks marks a span of seconds every "nice" number of seconds (about 8 marks)
// between PlotLeft and PlotRight.
func TimeTicks(span float64) []Tick {
	var out []Tick
	step := NiceStep(span / 8)
	for s := 0.0; s <= span+1e-9; s += step {
		out = append(out, Tick{X: Round1(PlotLeft + s/span*(PlotRight-PlotLeft)), Label: fmt.Sprintf("%gs", s)})
	}
	return out
}

// NiceStep is the smallest round step (0.1 s … 20 min) of at least raw seconds.
func NiceStep(raw float64) float64 {
	for _, s := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600} {
		if s >= raw {
			return s
		}
	}
	return 1200
}

// Round1 rounds to one decimal, so coordinates in the page stay short and stable.
func Round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
