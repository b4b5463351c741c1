package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/siteloss"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/replication/mongo"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// TestLabDemoDBDown walks `make demo`'s path through the CLI on a lab, with the
// db-down drill against the deployed PostgreSQL swarm service: `deploy --all` (every
// stack, the tunnels, replication), a plan with nothing to do, `drill db-down` at
// yaounde (postgres_db scaled to zero while every site writes, then restored), and
// a plan after the heal with nothing to do again: the drill put back exactly what
// was there.
func TestLabDemoDBDown(t *testing.T) {
	l := labtest.Shared(t)
	cli := func(args ...string) (string, string, error) {
		return run(t, nil, append([]string{"--config-dir", l.ConfigDir, "--env", "lab"}, args...)...)
	}
	if _, stderr, err := cli("deploy", "--all"); err != nil {
		t.Fatalf("deploy --all: %v\n%s", err, stderr)
	}
	nothingToDo := func(when string) {
		t.Helper()
		stdout, stderr, err := cli("plan", "--all")
		var exit *ExitError
		if errors.As(err, &exit) && exit.Code == 2 {
			t.Fatalf("plan %s: changes pending\n%s", when, stdout)
		}
		if err != nil {
			t.Fatalf("plan %s: %v\n%s", when, err, stderr)
		}
	}
	nothingToDo("after deploy --all")
	savedPlanHolds(t, cli)
	nothingToDo("after a deploy --plan refused")

	// --load 2: every site's clients call their own gateway through the drill.
	stdout, stderr, err := cli("drill", "db-down", "--site", "yaounde", "--duration", "10s", "--writes", "40", "--load", "2", "--output", "json")
	if err != nil {
		t.Fatalf("drill db-down: %v\n%s\n%s", err, stderr, stdout)
	}
	var rep drill.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("drill report: %v\n%s", err, stdout)
	}
	if !rep.Passed || rep.HealFailed || !rep.Converged {
		t.Fatalf("drill: passed=%v heal_failed=%v converged=%v error=%q\n%s", rep.Passed, rep.HealFailed, rep.Converged, rep.Error, stderr)
	}
	drillLoadShown(t, &rep)
	obs := map[string]drill.Observation{}
	for _, o := range rep.Observations {
		obs[o.What] = o
	}
	for _, what := range []string{
		"yaounde refuses writes while its database is down",
		"cloud keeps accepting its own writes",
		"douala keeps accepting its own writes",
		"yaounde: django-api_api keeps running",
	} {
		if o, ok := obs[what]; !ok || !o.OK {
			t.Errorf("observation %q: %+v (present %v)", what, o, ok)
		}
	}
	if o, ok := obs["yaounde: postgres_db keeps running"]; ok {
		t.Errorf("the database the drill stopped is reported as a service that keeps running: %+v", o)
	}
	// The fault counts as in place once the database's container stopped, not when
	// swarm was asked to stop it: no write at yaounde during the fault is taken.
	for _, w := range rep.Writes {
		if w.Site == "yaounde" && (w.Acked != 0 || w.Attempted == 0) {
			t.Errorf("yaounde acknowledged %d of %d writes while its database was down", w.Acked, w.Attempted)
		}
	}
	// Refused writes at the stopped site are the drill's intent, not a failed step.
	if !strings.Contains(stderr, "✓ write 40 row(s) at each of") || !strings.Contains(stderr, "yaounde refused 40 of 40 write(s)") {
		t.Errorf("the write step does not say the stopped site's refusals were intended:\n%s", stderr)
	}
	nothingToDo("after the drill")
	t.Run("SiteLossDouala", func(t *testing.T) {
		// About 75 s on the lab (2026-12-07), over what the suite's budget leaves
		// for one more check: run by hand with SITECTL_LAB_SITELOSS=1.
		if os.Getenv("SITECTL_LAB_SITELOSS") == "" {
			t.Skip("the site-loss drill on the lab takes ~75 s: set SITECTL_LAB_SITELOSS=1 to run it")
		}
		siteLossDrill(t, cli, "douala")
		nothingToDo("after the site-loss drill")
	})
	t.Run("SiteLossCloud", func(t *testing.T) {
		// The hub: with hub-and-spoke tunnels the spokes elect no MongoDB primary
		// while it is gone. About as long as SiteLossDouala: opt-in too.
		if os.Getenv("SITECTL_LAB_SITELOSS") == "" {
			t.Skip("the site-loss drill on the lab takes ~75 s: set SITECTL_LAB_SITELOSS=1 to run it")
		}
		siteLossDrill(t, cli, "cloud")
		nothingToDo("after the hub's site-loss drill")
	})
}

// siteLossDrill runs `drill site-loss` on the lab's swarms as an operator does:
// every site writes, the site's postgres_db and mongod services are stopped and
// their volumes deleted, the others write on, the site is rebuilt (PostgreSQL, then
// MongoDB's members on the lab's wire-protocol fake) and verified; RTO and RPO
// in the JSON and HTML reports.
func siteLossDrill(t *testing.T, cli func(args ...string) (string, string, error), site string) {
	t.Helper()
	page := filepath.Join(t.TempDir(), "loss.html")
	stdout, stderr, err := cli("drill", "site-loss", "--site", site, "--writes", "100", "--report", page, "--output", "json")
	if err != nil {
		t.Fatalf("drill site-loss: %v\n%s\n%s", err, stderr, stdout)
	}
	var rep siteloss.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("site-loss report: %v\n%s", err, stdout)
	}
	t.Logf("site-loss %s: passed %v, RTO %.1fs (PostgreSQL %.1fs), RPO %d rows, acknowledged %v", site, rep.Passed, rep.RTOSeconds, rep.PostgresRTOSeconds, rep.RPORows, rep.Acknowledged)
	if !rep.Passed || rep.RTOSeconds <= 0 || rep.Rebuild == nil || len(rep.Verified) == 0 || rep.Recovery != nil {
		t.Fatalf("site-loss: passed %v, RTO %.1f, rebuild %v, %d verified, recovery %+v, failed %v\n%s", rep.Passed, rep.RTOSeconds, rep.Rebuild != nil, len(rep.Verified), rep.Recovery, rep.Failed, stderr)
	}
	for _, s := range []string{"douala", "yaounde", "cloud"} {
		want := 200
		if s == site {
			want = 100
		}
		if rep.Acknowledged[s] != want {
			t.Errorf("%s acknowledged %d writes; want %d (the others write on during the loss)", s, rep.Acknowledged[s], want)
		}
	}
	// The hub's empty member, back before the MongoDB steps, gives a spoke its
	// majority: its vote is kept rather than removed (no reconfig at all then).
	if m := rep.Mongo; m == nil || m.Rebuild == nil || len(m.Rebuild.Reconfigs)+len(m.Rebuild.Kept) == 0 || m.Error != "" || m.RTOSeconds <= 0 {
		t.Errorf("the MongoDB part: %+v; want its members rebuilt with reconfigs (or their votes kept)", m)
	} else {
		for _, rc := range m.Rebuild.Reconfigs {
			if rc.Path != mongo.PathReconfig {
				t.Errorf("MongoDB reconfig %+v: want a normal reconfig on a primary, never forced in the drill", rc)
			}
		}
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`id="rto"`, "PASSED", `id="verified"`, "MongoDB"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("the HTML report lacks %q", w)
		}
	}
}

// drillLoadShown: a drill run with --load reports, for every site, availability
// before, during and after the fault, and verified the writes its clients made
// through the API (some acknowledged, none lost or duplicated).
func drillLoadShown(t *testing.T, rep *drill.Report) {
	t.Helper()
	phases := map[string]map[string]bool{}
	for _, a := range rep.Availability {
		t.Logf("availability %s %s: %d/%d ok (%.1f%%), longest gap %s, served by %v", a.Site, a.Phase, a.OK, a.Requests, 100*a.Success, a.LongestGap, a.ServedBy)
		if phases[a.Site] == nil {
			phases[a.Site] = map[string]bool{}
		}
		phases[a.Site][a.Phase] = a.Requests > 0
	}
	for _, site := range []string{"douala", "yaounde", "cloud"} {
		for _, p := range []string{"before", "during", "after"} {
			if !phases[site][p] {
				t.Errorf("no availability for %s %s the fault: %v", site, p, phases[site])
			}
		}
	}
	if a := rep.APIWrites; a == nil || !a.Passed || a.Acked == 0 || a.Lost != 0 || a.Duplicated != 0 {
		t.Errorf("writes through the API: %+v, want some acknowledged, all verified", a)
	} else {
		t.Logf("writes through the API: %d acknowledged, lost %d, duplicated %d", a.Acked, a.Lost, a.Duplicated)
	}
}

// savedPlanHolds: a plan saved with plan --out is deployed while planning again
// gives the same changes (every part: stacks, tunnels, replication, mongo), and
// refused, changing nothing, once the config moved on.
func savedPlanHolds(t *testing.T, cli func(args ...string) (string, string, error)) {
	t.Helper()
	saved := filepath.Join(t.TempDir(), "plan.json")
	if _, stderr, err := cli("plan", "--all", "--out", saved); err != nil {
		t.Fatalf("plan --out: %v\n%s", err, stderr)
	}
	if stdout, stderr, err := cli("deploy", "--plan", saved); err != nil || !strings.Contains(stdout, "✓ douala: nothing to do") {
		t.Fatalf("deploy --plan of a plan that holds: %v\n%s\n%s", err, stdout, stderr)
	}
	stdout, stderr, err := cli("deploy", "--plan", saved, "--set", "douala:values.django-api.replicas=2")
	if err == nil || !strings.Contains(err.Error(), "no longer holds, so nothing was changed") ||
		!strings.Contains(err.Error(), "douala: now also ~ service django-api_api (replicas: 1 → 2)") {
		t.Fatalf("deploy --plan after the config changed: %v\n%s\n%s", err, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "django-api_api (") {
		t.Errorf("a refused deploy printed steps:\n%s\n%s", stdout, stderr)
	}
}
