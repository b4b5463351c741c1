package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAppDatabaseCLI: config validate accepts the fixture app using the sites'
// PostgreSQL (internal/apps/testdata/dbapps) and refuses it, with the app's file,
// key and site, where a site it runs at does not run the postgres stack; stacks
// render wires the database without showing the password.
func TestAppDatabaseCLI(t *testing.T) {
	dir := exampleConfig(t, nil)
	appsDir := filepath.Join("..", "..", "internal", "apps", "testdata", "dbapps")
	const pw = "pg-cli-only-in-the-secret"
	env := []string{"SITECTL_PG_PASSWORD=" + pw}
	out, _, err := run(t, env, "config", "validate", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev")
	if err != nil {
		t.Fatalf("fixture app refused: %v\n%s", err, out)
	}
	out, _, err = run(t, env, "stacks", "render", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev", "--site", "douala")
	if err != nil {
		t.Fatalf("stacks render: %v", err)
	}
	if !strings.Contains(out, "DATABASE_PASSWORD_FILE=/run/secrets/database-password") || strings.Contains(out, pw) {
		t.Fatalf("stacks render: want the database wiring and no password:\n%s", out)
	}
	out, _, err = run(t, env, "config", "validate", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev", "--set", "douala:stacks=kong")
	want := "error: " + filepath.Join(appsDir, "notes", "compose.yaml") + ": x-sitectl.database: the app uses the site's PostgreSQL, but site douala does not run the postgres stack"
	if exitCode(err) != 1 || !strings.Contains(out, want) || strings.Count(out, "error:") != 1 {
		t.Fatalf("exit %d, want 1 and once %q:\n%s", exitCode(err), want, out)
	}
}
