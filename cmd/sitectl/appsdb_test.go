package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAppDatabaseCLI: config validate refuses the fixture app using the sites'
// PostgreSQL (internal/apps/testdata/dbapps) while the sites lack its role's
// password secret, accepts it with secrets.notes-db-password, and refuses it, with
// the app's file, key and site, where a site it runs at does not run the postgres
// stack; stacks render wires the database as app_notes without the password.
func TestAppDatabaseCLI(t *testing.T) {
	dir := exampleConfig(t, nil)
	appsDir := filepath.Join("..", "..", "internal", "apps", "testdata", "dbapps")
	const pw = "pg-cli-only-in-the-secret"
	env := []string{"SITECTL_PG_PASSWORD=admin-pw", "NOTES_DB_PW=" + pw}
	// Without the role's password secret: refused, naming it.
	out, _, err := run(t, env, "config", "validate", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev")
	if exitCode(err) != 1 || !strings.Contains(out, `x-sitectl.database.password: no secret "notes-db-password" at sites douala, yaounde`) {
		t.Fatalf("exit %d, want 1 and the missing secret named:\n%s", exitCode(err), out)
	}
	secret := []string{"--set", "douala:secrets.notes-db-password.env=NOTES_DB_PW", "--set", "yaounde:secrets.notes-db-password.env=NOTES_DB_PW"}
	out, _, err = run(t, env, append([]string{"config", "validate", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev"}, secret...)...)
	if err != nil {
		t.Fatalf("fixture app refused: %v\n%s", err, out)
	}
	out, _, err = run(t, env, append([]string{"stacks", "render", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev", "--site", "douala"}, secret...)...)
	if err != nil {
		t.Fatalf("stacks render: %v", err)
	}
	if !strings.Contains(out, "DATABASE_PASSWORD_FILE=/run/secrets/database-password") || !strings.Contains(out, "DATABASE_USER=app_notes") || strings.Contains(out, pw) {
		t.Fatalf("stacks render: want the database wiring as app_notes and no password:\n%s", out)
	}
	out, _, err = run(t, env, append([]string{"config", "validate", "--config-dir", dir, "--apps-dir", appsDir, "--env", "dev", "--set", "douala:stacks=kong"}, secret...)...)
	want := "error: " + filepath.Join(appsDir, "notes", "compose.yaml") + ": x-sitectl.database: the app uses the site's PostgreSQL, but site douala does not run the postgres stack"
	if exitCode(err) != 1 || !strings.Contains(out, want) || strings.Count(out, "error:") != 1 {
		t.Fatalf("exit %d, want 1 and once %q:\n%s", exitCode(err), want, out)
	}
}
