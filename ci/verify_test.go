package ci

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A verify job fails exactly when the sitectl command it runs fails: its script runs
// in sh -e (GitLab's runner adds pipefail in bash; plain sh has none, so a pipe would
// mask the code here) with bin/sitectl a stand-in that exits with a given code and
// records its arguments. Every verify job of every environment, both ways.
func TestVerifyJobsFailWhenTheCheckFails(t *testing.T) {
	for _, env := range []string{"dev", "staging", "production"} {
		topo := load(t, copyConfig(t, nil), env, nil)
		p, err := Generate(topo, Options{})
		if err != nil {
			t.Fatal(err)
		}
		jobs := 0
		for _, j := range p.Jobs {
			if j.Stage != "verify" {
				continue
			}
			jobs++
			for _, line := range j.Script {
				if why := masksExitCode(line); why != "" {
					t.Errorf("%s: script line %q %s", j.Name, line, why)
				}
			}
			for _, code := range []int{0, 1, 3} {
				got, calls := runWithStandIn(t, j.Script, code)
				if (got == 0) != (code == 0) {
					t.Errorf("%s: sitectl exits %d, the job exits %d", j.Name, code, got)
				}
				if len(calls) == 0 {
					t.Errorf("%s: the script never runs bin/sitectl", j.Name)
				}
			}
			_, calls := runWithStandIn(t, j.Script, 0)
			want := []string{"status", "tunnels status"}
			if strings.HasSuffix(j.Name, ":replication") {
				want = []string{"replication status", "mongo status"}
			}
			if len(calls) != len(want) {
				t.Fatalf("%s runs sitectl %q, want %q", j.Name, calls, want)
			}
			for i := range want {
				if !strings.HasPrefix(calls[i], want[i]+" ") || !strings.HasSuffix(calls[i], " --env "+env) {
					t.Errorf("%s runs sitectl %q, want %s ... --env %s", j.Name, calls[i], want[i], env)
				}
			}
		}
		if jobs < 4 {
			t.Errorf("%s: %d verify jobs, want one per site and replication", env, jobs)
		}
	}
}

// The checks above can fail: each way of masking an exit code is recognised.
func TestMaskedExitCodesAreCaught(t *testing.T) {
	for _, line := range []string{
		"bin/sitectl replication status --env dev || true",
		"bin/sitectl replication status --env dev | tee out.txt",
		"! bin/sitectl replication status --env dev",
		"if bin/sitectl replication status --env dev; then :; fi",
		"set +e",
		"bin/sitectl status --site douala &",
	} {
		if masksExitCode(line) == "" {
			t.Errorf("%q is not recognised as masking the exit code", line)
		}
	}
	// And running such a line with the stand-in shows the job passing while sitectl
	// failed, which the run above reports.
	for _, line := range []string{
		"bin/sitectl replication status --env dev || true",
		"bin/sitectl replication status --env dev | cat",
		"if bin/sitectl replication status --env dev; then :; fi",
	} {
		if code, calls := runWithStandIn(t, []string{line}, 1); code != 0 || len(calls) != 1 {
			t.Errorf("%q with sitectl failing: job exit %d, calls %q; want a masked 0", line, code, calls)
		}
	}
}

// masksExitCode says how a script line could hide its command's exit code, "" if it
// cannot.
func masksExitCode(line string) string {
	switch {
	case strings.Contains(line, "||"):
		return "has ||"
	case strings.Contains(strings.ReplaceAll(line, "||", ""), "|"):
		return "has a pipe"
	case strings.HasPrefix(strings.TrimSpace(line), "!"), strings.HasPrefix(strings.TrimSpace(line), "if "):
		return "tests the code instead of failing on it"
	case strings.Contains(strings.ReplaceAll(line, "&&", ""), "&"):
		return "runs in the background"
	case strings.Contains(line, "set +e"), strings.Contains(line, "exit 0"):
		return "turns errors off"
	}
	return ""
}

// runWithStandIn runs script lines in sh -e in a directory whose bin/sitectl exits
// with code; it returns the script's exit code and the stand-in's argument lines.
func runWithStandIn(t *testing.T, script []string, code int) (int, []string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	stub := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> calls\nexit %d\n", code)
	if err := os.WriteFile(filepath.Join(dir, "bin", "sitectl"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-ec", strings.Join(script, "\n"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		t.Fatalf("sh: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "calls"))
	if len(b) == 0 {
		return got, nil
	}
	return got, strings.Split(strings.TrimSpace(string(b)), "\n")
}
