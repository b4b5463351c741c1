package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/lab/labtest"
)

// TestLabReadCommandsFail runs the read commands on the deployed lab: each passes
// (exit 0, a ✓ last line where it has one); then the douala-cloud tunnel is cut
// (`tunnels down`: its SAs gone, packets dropped, both databases still "connected"),
// and `replication status` fails within seconds, douala's flows stalled, as does
// `tunnels status`; after `tunnels up` and `replication resume` both pass again.
func TestLabReadCommandsFail(t *testing.T) {
	l := labtest.Shared(t)
	cli := func(args ...string) (string, string, error) {
		return run(t, nil, append([]string{"--config-dir", l.ConfigDir, "--env", "lab"}, args...)...)
	}
	if _, stderr, err := cli("deploy", "--all"); err != nil {
		t.Fatalf("deploy --all: %v\n%s", err, stderr)
	}
	for _, args := range [][]string{{"status", "--all"}, {"tunnels", "status"}, {"replication", "status"}, {"mongo", "status"}} {
		out, errOut, err := cli(args...)
		if err != nil {
			t.Errorf("%s on the deployed lab: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
			continue
		}
		if args[0] != "tunnels" && !strings.HasPrefix(lastLine(out), "✓ ") {
			t.Errorf("%s: last line %q", strings.Join(args, " "), lastLine(out))
		}
	}

	if _, errOut, err := cli("tunnels", "down", "--link", "douala-cloud"); err != nil {
		t.Fatalf("tunnels down: %v\n%s", err, errOut)
	}
	cutAt := time.Now()
	healed := false
	heal := func() {
		if !healed {
			healed = true
			if _, errOut, err := cli("tunnels", "up", "--link", "douala-cloud"); err != nil {
				t.Errorf("tunnels up: %v\n%s", err, errOut)
			}
		}
	}
	defer heal()
	var out string
	for {
		var err error
		out, _, err = cli("replication", "status")
		last := lastLine(out)
		if err != nil && exitCode(err) == 1 && strings.Contains(last, "douala → cloud ") && strings.Contains(last, "cloud → douala ") {
			break
		}
		if time.Since(cutAt) > 60*time.Second {
			t.Fatalf("replication status %s after the cut: %v\n%s", time.Since(cutAt).Round(time.Second), err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("FIGURE replication status failed %s after tunnels down:\n%s", time.Since(cutAt).Round(100*time.Millisecond), out)
	// Before the 30 s timeouts drop the connections (and disable the subscriptions),
	// the flows show as stalled, not streaming.
	if last := lastLine(out); !strings.Contains(last, "douala → cloud stalled (no message for") || !strings.Contains(last, "cloud → douala stalled (no message for") {
		t.Errorf("want douala's flows stalled, last line %q", last)
	}
	if _, _, err := cli("tunnels", "status"); err == nil || exitCode(err) != 1 {
		t.Errorf("tunnels status with douala-cloud cut: %v", err)
	}

	heal()
	if out, errOut, err := cli("replication", "resume"); err != nil {
		t.Fatalf("replication resume: %v\n%s%s", err, out, errOut)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _, err := cli("replication", "status")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replication status after the heal and resume: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		out, errOut, err := cli("tunnels", "status")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnels status after the heal: %v\n%s%s", err, out, errOut)
		}
	}
}
