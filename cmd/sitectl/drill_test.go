package main

import (
	"strings"
	"testing"
)

func TestDrillRefusesProductionWithoutConfirm(t *testing.T) {
	dir := exampleConfig(t, nil)
	for _, kind := range []string{"partition", "db-down"} {
		_, _, err := run(t, nil, "--config-dir", dir, "--env", "production", "drill", kind, "--site", "douala")
		if err == nil || !strings.Contains(err.Error(), "--confirm production") || exitCode(err) != 1 {
			t.Fatalf("drill %s in production without --confirm: %v", kind, err)
		}
	}
	_, _, err := run(t, nil, "--config-dir", dir, "--env", "production", "drill", "node-loss", "--site", "douala")
	if err == nil || !strings.Contains(err.Error(), "node") {
		t.Fatalf("node-loss without --node: %v", err)
	}
}

func TestDrillRejectsUnknownSiteAndNode(t *testing.T) {
	dir := exampleConfig(t, nil)
	_, _, err := run(t, nil, "--config-dir", dir, "--env", "dev", "drill", "node-loss", "--site", "douala", "--node", "nope")
	if err == nil || !strings.Contains(err.Error(), "douala-app1") {
		t.Fatalf("node-loss with an unknown node: %v (want the list of douala's nodes)", err)
	}
	_, _, err = run(t, nil, "--config-dir", dir, "--env", "dev", "drill", "partition", "--site", "lagos")
	if err == nil || !strings.Contains(err.Error(), "lagos") {
		t.Fatalf("partition of an unknown site: %v", err)
	}
}

// TestDrillHealCannotReadTheSwarms: heal whose sites' swarms cannot be read says
// so and exits 1 (it cannot tell that nothing is left); --site and --all exclude
// each other. (The heal itself runs in drill/live's TestLabDrillHealAfterKill.)
func TestDrillHealCannotReadTheSwarms(t *testing.T) {
	dir := exampleConfig(t, nil)
	_, stderr, err := run(t, nil, "--config-dir", dir, "--env", "dev", "--set", "engine.host=unix:///nonexistent/docker.sock", "drill", "heal", "--site", "douala")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "could not read the drill records of 1 site(s)") ||
		!strings.Contains(stderr, "could not read drill records: site douala: engine unix:///nonexistent/docker.sock does not answer") {
		t.Fatalf("heal with douala's engine unreachable: %v\n%s", err, stderr)
	}
	_, _, err = run(t, nil, "--config-dir", dir, "--env", "dev", "drill", "heal", "--site", "douala", "--all")
	if err == nil || !strings.Contains(err.Error(), "--site and --all exclude each other") {
		t.Fatalf("heal --site --all: %v", err)
	}
}

// TestDrillSoakRefusesBadInput: each bad flag gives one error naming it, before
// anything is contacted or any seed drawn.
func TestDrillSoakRefusesBadInput(t *testing.T) {
	dir := exampleConfig(t, nil)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--faults", "partition,flood"}, `--faults lists "flood"`},
		{[]string{"--duration", "0s"}, "--duration and --fault-duration must be above 0"},
		{[]string{"--load", "-1"}, "--load is -1"},
		{[]string{"--writes", "0"}, "--writes is 0"},
	} {
		stdout, _, err := run(t, nil, append([]string{"--config-dir", dir, "--env", "dev", "drill", "soak"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(stdout, "soak seed") {
			t.Errorf("drill soak %v: %v (stdout %q), want one error with %q", c.args, err, stdout, c.want)
		}
	}
	_, _, err := run(t, nil, "--config-dir", dir, "--env", "production", "drill", "soak")
	if err == nil || !strings.Contains(err.Error(), "--confirm production") {
		t.Errorf("soak in production without --confirm: %v", err)
	}
}
