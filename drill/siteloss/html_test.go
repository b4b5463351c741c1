package siteloss

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/internal/htmlpage"
	"github.com/sitectl/sitectl/replication/mongo"
	"github.com/sitectl/sitectl/replication/postgres"
)

// sampleReport is a site-loss drill of douala with its old instance brought back,
// at fixed instants.
func sampleReport() *Report {
	t0 := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	sum := postgres.Sum{Rows: 200, Checksum: "123456789"}
	r := &Report{Site: "douala", Run: "siteloss-0194a1b2-c3d4", Started: at(0), LostAt: at(2), ReplacedAt: at(6), VerifiedAt: at(11.5),
		RTOSeconds: 9.5, Acknowledged: map[string]int{"cloud": 400, "douala": 200, "yaounde": 400},
		RPORows: 12, RPOWindow: &Window{From: at(1.8), To: at(1.95)}, Passed: true,
		Rebuild: &postgres.Rebuild{Site: "douala", From: 0, Generation: 1, OwnSource: "cloud",
			Copied: []postgres.Copied{{Table: "public.sitectl_drill", Where: "site = 'douala'", From: "cloud", To: "douala", Rows: 188, Took: 31 * time.Millisecond}}},
		Verified: []postgres.Verified{{Table: "public.sitectl_drill", Owner: "douala", Equal: true,
			Sums: map[string]postgres.Sum{"cloud": sum, "douala": sum, "yaounde": sum}}},
		OldReturn: &OldReturn{Address: "127.0.0.1:54321", ReturnedAt: at(12), Fenced: true, OwnGeneration: 0, RecordedGeneration: 1,
			Refusal: "douala: this database is generation 0 of douala, but cloud and yaounde record generation 1", Reconciled: 12,
			ReconciledAt: at(14), Recovered: 12},
	}
	return r
}

// TestHTMLReport renders a synthetic report: a valid, self-contained page with the
// verdict, RTO, RPO before and after the reconcile, the fencing and a timeline
// bar per phase; the page is compared with its golden file.
func TestHTMLReport(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if _, err := html.Parse(strings.NewReader(page)); err != nil {
		t.Fatal(err)
	}
	if refs, err := htmlpage.ExternalRefs(strings.NewReader(page)); err != nil || len(refs) > 0 {
		t.Errorf("external references: %v %v", refs, err)
	}
	for _, want := range []string{`<span class="pass">PASSED</span>`, `<td id="rto">9.5 s</td>`, `<td id="rpo">12 rows, written 14:00:01.800 – 14:00:01.950</td>`,
		`<td id="rpo-after">0 rows</td>`, "refused (fenced): generation 0 of itself, 1 recorded by its peers", "12 of 12",
		`class="phase lost"`, `class="phase old"`, "200 rows, checksum 123456789"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	golden.AssertString(t, "siteloss.golden.html", page)

	// A failed drill says so and lists why; an unfenced old instance is flagged.
	r := sampleReport()
	r.Passed, r.Failed = false, []string{"3 acknowledged writes missing (first: douala/x at cloud)"}
	r.OldReturn.Fenced = false
	b.Reset()
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<span class="fail">FAILED</span>`, `<li class="fail">3 acknowledged writes missing`, `<td class="fail">NOT refused</td>`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("failed page lacks %q", want)
		}
	}
}

// TestHTMLReportMongoAndRecovery: the MongoDB part (members, reconfigs and their
// path, time to caught up) and a recovery after a stopped drill are on the page.
func TestHTMLReportMongoAndRecovery(t *testing.T) {
	r := sampleReport()
	r.OldReturn = nil
	t0 := r.Started
	r.PostgresRTOSeconds, r.RTOSeconds = 9.5, 14.25
	r.Mongo = &MongoReport{LostAt: t0.Add(2 * time.Second), RebuiltAt: t0.Add(16250 * time.Millisecond), RTOSeconds: 14.25, Seconds: 5,
		Rebuild: &mongo.Rebuild{Site: "douala", Members: []string{"10.10.0.12:27017"}, Majority: true,
			Reconfigs: []mongo.Reconfig{{Member: "10.10.0.12:27017", Change: []string{"votes: 1 → 0", "priority: 1 → 0"}, Path: mongo.PathReconfig, On: "10.30.0.11:27017"}},
			Kept:      []mongo.KeptVote{{Member: "10.10.0.13:27017", Reason: "its mongod is back and answers as SECONDARY"}}}}
	r.Recovery = &Recovery{Replaced: true, Rebuilt: true, MongoRebuilt: true, Seconds: 7.5}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if _, err := html.Parse(strings.NewReader(page)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<td id="rto">14.2 s</td>`, "MongoDB members included", `<table id="mongo">`, "<td>10.10.0.12:27017</td>",
		"reconfig on 10.30.0.11:27017: votes: 1 → 0, priority: 1 → 0", "14.2 s after the loss (rebuild 5.0 s)", "PostgreSQL alone: rebuilt and verified 9.5 s",
		`class="phase mongo"`, `<table id="recovery">`, "true (and its MongoDB members) in 7.5 s", "<th>vote kept by 10.10.0.13:27017</th><td>its mongod is back and answers as SECONDARY</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
