package images

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBarmanImageRuns builds the Barman image's root filesystem, unpacks it and runs
// in it (chroot) barman, pg_basebackup, pg_receivewal and rsync, and the entrypoint
// once: it writes Barman's password file from the secrets, 0600, owned by barman;
// the exporter runs on the image's python3.
func TestBarmanImageRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	rc := barmanRecipe()
	root := unpackRecipe(t, rc, testStandin(t), true)
	for _, c := range [][]string{{"barman", "--version"}, {"pg_basebackup", "--version"}, {"pg_receivewal", "--version"}, {"rsync", "--version"}} {
		cmd := exec.Command("chroot", append([]string{root}, c...)...)
		cmd.Env = rc.cfg.Env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("chroot %s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "run", "secrets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "run", "secrets", "barman-password-douala"), []byte("s3cret"), 0o400); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("chroot", root, "/usr/local/bin/barman-entrypoint", "--once")
	cmd.Env = append(rc.cfg.Env, "BARMAN_TARGETS=douala=10.10.0.12:5432:barman")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("entrypoint --once: %v\n%s", err, out)
	}
	pgpass := filepath.Join(root, "var", "lib", "barman", ".pgpass")
	got, err := os.ReadFile(pgpass)
	if err != nil || string(got) != "10.10.0.12:5432:*:barman:s3cret\n" {
		t.Fatalf("password file: %q, %v", got, err)
	}
	if fi, err := os.Stat(pgpass); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file mode: %v, %v", fi.Mode(), err)
	}
	// The exporter runs on the image's python3 (its standard library is enough):
	// with no Barman configuration for douala, the site is reported down.
	cmd = exec.Command("chroot", root, "barman-exporter", "--once")
	cmd.Env = append(rc.cfg.Env, "BARMAN_TARGETS=douala=10.10.0.12:5432:barman")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `sitectl_backup_up{site="douala"} 0`) {
		t.Fatalf("barman-exporter --once in the image: %v\n%s", err, out)
	}
}
