package backup

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/internal/htmlpage"
)

// TestReportHTML: the restore drill's page says PASS only when every site passed,
// shows each site's counts per table and owning site with a mark where live and
// restored differ, names the problems, refers to nothing outside itself; golden.
func TestReportHTML(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ok := DrillReport{Site: "douala", Point: at, WrittenBefore: 300, WrittenAfter: 300, Deleted: 300, FoundBefore: 300, BackupID: "20261207T115900",
		RecoverTook: 5 * time.Second, StartTook: 2 * time.Second, Pass: true, Problems: []string{},
		Counts: []TableCount{{Table: "orders", Site: "douala", Live: 500, Restored: 500}, {Table: "sitectl_backup_drill", Site: "douala", Live: 300, Restored: 300}}}
	bad := DrillReport{Site: "yaounde", Point: at, WrittenBefore: 300, FoundBefore: 299, Pass: false,
		Problems: []string{"table orders, site \"yaounde\": 7 rows live as of the point, 6 restored"},
		Counts:   []TableCount{{Table: "orders", Site: "yaounde", Live: 7, Restored: 6}, {Table: "notes", Live: 1, Restored: 1}}}
	page, err := ReportHTML([]DrillReport{ok, bad}, at)
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "report/drill-restore.html", page)
	s := string(page)
	if !strings.Contains(s, `<span class="fail">FAIL</span>`) || !strings.Contains(s, `<td>6</td><td class="fail">✗</td>`) || !strings.Contains(s, "(no site column)") ||
		!strings.Contains(s, "7 rows live as of the point, 6 restored") {
		t.Errorf("page misses the failing site's verdict, mark, or problem:\n%s", s)
	}
	if refs, err := htmlpage.ExternalRefs(bytes.NewReader(page)); err != nil || len(refs) != 0 {
		t.Errorf("page refers outside itself: %v %v", refs, err)
	}
	page, _ = ReportHTML([]DrillReport{ok}, at)
	if !strings.Contains(string(page), `<h1>drill restore: <span class="pass">PASS</span>`) {
		t.Errorf("all sites passed, page does not say PASS")
	}
}
