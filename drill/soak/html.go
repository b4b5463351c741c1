package soak

import (
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/internal/htmlpage"
)

var pageTmpl = template.Must(template.New("soak").Funcs(template.FuncMap{
	"style": func() template.CSS { return htmlpage.Style },
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("15:04:05")
	},
	"date": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"secs": func(s *drill.Seconds) string {
		if s == nil {
			return "—"
		}
		return fmt.Sprintf("%.1f s", float64(*s))
	},
	"gap":  func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) },
	"pct":  func(ok, n int) string { return fmt.Sprintf("%.2f%%", 100*float64(ok)/float64(max(n, 1))) },
	"join": strings.Join,
	"served": func(m map[string]int) string {
		parts := make([]string, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
		}
		return strings.Join(parts, ", ")
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sitectl soak {{.Seed}}</title>
<style>{{style}}</style></head><body>
<h1>Soak <span class="{{if .Passed}}pass">PASSED{{else if .Interrupted}}fail">INTERRUPTED{{else}}fail">FAILED{{end}}</span></h1>
<p>Seed <b>{{.Seed}}</b> — replay: <code>sitectl drill soak {{.Replay}}</code>. Started {{date .Started}}, finished {{date .Finished}};
faults drawn from {{join .Faults ", "}}{{if .Load}}; --load {{.Load}} requests/s per site{{end}}.</p>
<p>Lost <b>{{.Lost}}</b>, duplicated <b>{{.Duplicated}}</b>{{if .Load}}, {{.APIAcked}} write(s) through the API verified{{end}}.{{if .Error}} {{.Error}}{{end}}</p>
<h2>Faults</h2>
<table><tr><th>fault</th><th>started</th><th>in effect</th><th>removed</th><th>held</th><th>result</th><th>rows acked / lost / dup</th><th>API writes acked / lost / dup</th><th>failed</th></tr>
{{range .Steps}}<tr><td>{{.Step}}</td><td>{{clock .Started}}</td><td>{{clock .InEffect}}</td><td>{{clock .Removed}}</td><td>{{secs .Held}}</td>
<td class="{{if .Passed}}pass">passed{{else}}fail">FAILED{{end}}</td><td>{{.Acked}} / {{.Lost}} / {{.Duplicated}}</td><td>{{.APIAcked}} / {{.APILost}} / {{.APIDuplicated}}</td><td>{{join .Failed "; "}}</td></tr>
{{end}}</table>
{{if .Load}}<h2>Availability per fault and phase</h2>
<table><tr><th>fault</th><th>site</th><th>phase</th><th>ok / requests</th><th>success</th><th>longest gap</th><th>served by</th></tr>
{{range $s := .Steps}}{{range .Availability}}<tr><td>{{$s.Step}}</td><td>{{.Site}}</td><td>{{.Phase}}</td><td>{{.OK}} / {{.Requests}}</td><td>{{pct .OK .Requests}}</td><td>{{gap .LongestGap}}</td><td>{{served .ServedBy}}</td></tr>
{{end}}{{end}}</table>{{end}}
{{with .Final}}<h2>Final verification</h2>
<table><tr><th>check</th><th>result</th><th>detail</th></tr>
{{range .Checks}}<tr><td>{{.Name}}</td><td class="{{if .Passed}}pass">passed{{else}}fail">FAILED{{end}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{end}}
<h2>Schedule drawn from the seed</h2>
<p>{{range .Planned}}{{.}} {{end}}</p>
</body></html>
`))

// WriteHTML writes the soak report as one self-contained page (the drill
// report's look: internal/htmlpage).
func WriteHTML(w io.Writer, r *Report) error { return pageTmpl.Execute(w, r) }
