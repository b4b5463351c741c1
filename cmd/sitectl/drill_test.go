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
