package main

import (
	"strings"
	"testing"
)

// TestSiteRebuildRefusals: an unknown site, production without --confirm, and a
// database that does not answer each get one clear error and change nothing.
func TestSiteRebuildRefusals(t *testing.T) {
	dir := exampleConfig(t, nil)
	env := []string{"SITECTL_PG_PASSWORD=x"}
	_, _, err := run(t, env, "--config-dir", dir, "--env", "dev", "site", "rebuild", "lagos")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), `no site "lagos"`) || !strings.Contains(err.Error(), "douala") {
		t.Errorf("rebuild of an unknown site: %v (want the list of sites)", err)
	}
	_, _, err = run(t, env, "--config-dir", dir, "--env", "production", "site", "rebuild", "douala")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "--confirm production") {
		t.Errorf("rebuild in production without --confirm: %v", err)
	}
	_, _, err = run(t, env, "--config-dir", dir, "--env", "dev", "--set", "postgres.host=127.0.0.1", "--set", "postgres.port=1",
		"site", "rebuild", "douala", "--dry-run")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "every replicating site's database must answer") {
		t.Errorf("rebuild with no database answering: %v", err)
	}
	_, _, err = run(t, env, "--config-dir", dir, "--env", "dev", "site", "rebuild")
	if err == nil {
		t.Error("rebuild without a site: no error")
	}
}

func TestSiteReconcileRefusals(t *testing.T) {
	dir := exampleConfig(t, nil)
	env := []string{"SITECTL_PG_PASSWORD=x"}
	_, _, err := run(t, env, "--config-dir", dir, "--env", "dev", "site", "reconcile", "douala", "--from-old", "nohost")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Errorf("reconcile with --from-old without a port: %v", err)
	}
	_, _, err = run(t, env, "--config-dir", dir, "--env", "dev", "site", "reconcile", "douala", "--from-old", "127.0.0.1:1")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "old instance") {
		t.Errorf("reconcile from an old instance that does not answer: %v", err)
	}
	_, _, err = run(t, env, "--config-dir", dir, "--env", "dev", "site", "reconcile", "douala")
	if err == nil {
		t.Error("reconcile without --from-old: no error")
	}
}

func TestDrillSiteLossRefusals(t *testing.T) {
	dir := exampleConfig(t, nil)
	_, _, err := run(t, nil, "--config-dir", dir, "--env", "production", "drill", "site-loss", "--site", "douala")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "--confirm production") {
		t.Errorf("site-loss in production without --confirm: %v", err)
	}
	_, _, err = run(t, nil, "--config-dir", dir, "--env", "dev", "drill", "site-loss", "--site", "douala", "--writes", "0")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "--writes 0") {
		t.Errorf("site-loss with --writes 0: %v", err)
	}
	_, _, err = run(t, nil, "--config-dir", dir, "--env", "dev", "drill", "site-loss", "--site", "douala", "--batch", "0")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "--batch 0") {
		t.Errorf("site-loss with --batch 0: %v", err)
	}
	_, _, err = run(t, nil, "--config-dir", dir, "--env", "dev", "drill", "site-loss", "--site", "lagos")
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "lagos") {
		t.Errorf("site-loss of an unknown site: %v", err)
	}
}
