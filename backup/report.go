package backup

import (
	"bytes"
	"html/template"
	"time"

	"github.com/sitectl/sitectl/internal/htmlpage"
)

var reportPage = template.Must(template.New("restore").Funcs(template.FuncMap{
	"style": func() template.CSS { return htmlpage.Style },
	"when":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000 MST") },
	"dur":   func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"site": func(s string) string {
		if s == "" {
			return "(no site column)"
		}
		return s
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sitectl drill restore</title>
<style>{{style}}</style></head><body>
<h1>drill restore: {{if .Pass}}<span class="pass">PASS</span>{{else}}<span class="fail">FAIL</span>{{end}}</h1>
<p>Generated {{when .Generated}}. Per site: marked rows written before a noted point, more after it, the first
deleted "by mistake"; the database restored as of the point into a scratch server (removed afterwards) and
compared with the live database as of the point.</p>
<table><tr><th>site</th><th>verdict</th><th>point</th><th>rows before the point restored</th><th>rows after it restored</th><th>live kept the delete</th><th>base backup</th><th>recover</th><th>replay</th></tr>
{{range .Reports}}<tr><td>{{.Site}}</td>{{if .Pass}}<td class="pass">PASS</td>{{else}}<td class="fail">FAIL</td>{{end}}
<td>{{if not .Point.IsZero}}{{when .Point}}{{end}}</td><td>{{.FoundBefore}} / {{.WrittenBefore}}</td><td>{{.FoundAfter}} (want 0)</td>
<td>{{if eq .LiveBefore 0}}yes{{else}}no: {{.LiveBefore}} left{{end}}</td><td>{{.BackupID}}</td><td>{{dur .RecoverTook}}</td><td>{{dur .StartTook}}</td></tr>
{{end}}</table>
{{range .Reports}}<h2>{{.Site}}</h2>
{{range .Problems}}<p class="alarm">{{.}}</p>{{end}}
{{if .Counts}}<table><tr><th>table</th><th>owning site</th><th>live as of the point</th><th>restored</th><th></th></tr>
{{range .Counts}}<tr><td>{{.Table}}</td><td>{{site .Site}}</td><td>{{.Live}}</td><td>{{.Restored}}</td>{{if eq .Live .Restored}}<td class="pass">✓</td>{{else}}<td class="fail">✗</td>{{end}}</tr>
{{end}}</table>{{end}}
{{end}}</body></html>
`))

// ReportHTML renders the restore drill's reports as one self-contained HTML page
// (no external asset): a verdict per site, and per site the row counts per table
// and owning site, live as of the point against restored.
func ReportHTML(reports []DrillReport, generated time.Time) ([]byte, error) {
	pass := len(reports) > 0
	for _, r := range reports {
		pass = pass && r.Pass
	}
	var b bytes.Buffer
	err := reportPage.Execute(&b, struct {
		Reports   []DrillReport
		Pass      bool
		Generated time.Time
	}{reports, pass, generated})
	return b.Bytes(), err
}
