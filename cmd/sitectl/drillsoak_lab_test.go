package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill/soak"
	"github.com/sitectl/sitectl/lab/labtest"
)

// TestLabSoak runs a short soak on the shared lab with every stack deployed: a
// fixed seed (7: cloud-loss, api-kill yaounde, partition douala, db-down cloud, …),
// 2 requests/s of clients at every site's gateway, faults of 8 s. It must pass:
// every fault healed and verified, the API task swarm replaced, every write
// through the API verified, lost = duplicated = 0, and the seed printed first.
func TestLabSoak(t *testing.T) {
	l := labtest.Shared(t)
	cli := func(args ...string) (string, string, error) {
		return run(t, nil, append([]string{"--config-dir", l.ConfigDir, "--env", "lab"}, args...)...)
	}
	// Every stack deployed (nothing to do after TestLabDemoDBDown).
	if _, stderr, err := cli("deploy", "--all"); err != nil {
		t.Fatalf("deploy --all: %v\n%s", err, stderr)
	}
	// A deploy on a loaded machine may leave replication still starting: the soak's
	// first preflight needs every flow streaming.
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(5 * time.Second) {
		out, _, err := cli("replication", "status")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replication not streaming 4 minutes after deploy --all:\n%s", out)
		}
		_, _, _ = cli("replication", "resume")
	}
	page := filepath.Join(t.TempDir(), "soak.html")
	stdout, stderr, err := cli("drill", "soak", "--seed", "7", "--faults", "partition,cloud-loss,db-down,api-kill",
		"--duration", "100s", "--fault-duration", "8s", "--writes", "20", "--load", "2", "--output", "json", "--report", page)
	var rep soak.Report
	if jerr := json.Unmarshal([]byte(stdout), &rep); jerr != nil {
		t.Fatalf("soak: %v; report: %v\n%s\n%s", err, jerr, stdout, stderr)
	}
	for _, s := range rep.Steps {
		held := 0.0
		if s.Held != nil {
			held = float64(*s.Held)
		}
		t.Logf("%s: in effect %s, removed %s, held %.1fs, passed %v: %s; rows %d/%d/%d, API writes %d/%d/%d %v", s.Step,
			s.InEffect.Sub(s.Started).Round(time.Millisecond), s.Removed.Sub(s.Started).Round(time.Millisecond), held, s.Passed, s.Summary,
			s.Acked, s.Lost, s.Duplicated, s.APIAcked, s.APILost, s.APIDuplicated, s.Failed)
		for _, a := range s.Availability {
			t.Logf("  availability %s %s: %d/%d ok (%.1f%%), longest gap %s, served by %v", a.Site, a.Phase, a.OK, a.Requests, 100*a.Success, a.LongestGap, a.ServedBy)
		}
	}
	t.Log(rep.Summary())
	if rep.Final != nil {
		for _, c := range rep.Final.Checks {
			t.Logf("final: %s passed=%v: %s", c.Name, c.Passed, c.Detail)
		}
	}
	if err != nil || !rep.Passed || rep.Lost != 0 || rep.Duplicated != 0 || rep.Final == nil || !rep.Final.Passed {
		t.Fatalf("soak: %v: %s\n%s", err, rep.Summary(), stderr)
	}
	if len(rep.Steps) < 2 || rep.Steps[0].Kind != "cloud-loss" || rep.Steps[1].Kind != "api-kill" || rep.Steps[1].Site != "yaounde" {
		t.Errorf("steps %v, want seed 7's schedule: cloud-loss, then api-kill yaounde, …", rep.Steps)
	}
	if rep.APIAcked == 0 {
		t.Errorf("no write through the API acknowledged during the soak")
	}
	if !strings.Contains(stderr, "soak seed 7 (replay: sitectl drill soak --seed 7") {
		t.Errorf("the seed is not printed on stderr with -o json:\n%s", stderr)
	}
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), "api-kill yaounde") {
		t.Errorf("--report page: %v", err)
	}
}
