package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/backup/backuptest"
	"github.com/sitectl/sitectl/lab/labtest"
)

// TestLabBackupCLI: the commands against a real PostgreSQL 15 and Barman 3.4 on
// this host: backup run, status green, drill restore PASSES, and restore --time
// before a mistaken DELETE brings the rows back in a scratch server it prints the
// address of, while the live database keeps the delete; then restore --replace
// (testRestoreReplace).
func TestLabBackupCLI(t *testing.T) {
	labtest.Skip(t)
	dir := exampleConfig(t, nil)
	// Logical replication settings: douala replicates in testRestoreReplace.
	s := backuptest.StartWith(t, "douala", logicalSettings(t, dir))
	s.WaitStreaming(t)
	t.Setenv("PGPASSFILE", s.PGPassFile)
	t.Setenv("SITECTL_PG_PASSWORD", s.Password)
	t.Setenv("SITECTL_PG_APP_PASSWORD", s.Password+"-app")
	base := []string{"--config-dir", dir, "--set", "douala:backup.server=cloud", "--set", "douala:postgres.host=127.0.0.1",
		"--set", "douala:postgres.port=" + strconv.Itoa(s.Port), "--set", "douala:postgres.sslmode=disable"}
	cli := func(args ...string) (string, string, error) {
		return run(t, []string{"SITECTL_BARMAN_CONFIG=" + s.BarmanConfig}, append(base, args...)...)
	}
	if out, errOut, err := cli("backup", "run", "--site", "douala"); err != nil || !strings.Contains(out, "douala: base backup ") {
		t.Fatalf("backup run: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := cli("backup", "status", "--site", "douala"); err != nil {
		t.Fatalf("backup status after a base backup: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := cli("drill", "restore", "--site", "douala", "--rows", "300", "--dir", s.RestoreDir, "--port", strconv.Itoa(backuptest.FreePort(t))); err != nil || !strings.HasPrefix(out, "PASS douala") {
		t.Fatalf("drill restore: %v\n%s%s", err, out, errOut)
	}
	// -o json and --report: the counts per table and owning site, live as of the
	// point against restored, in both.
	page := filepath.Join(t.TempDir(), "restore.html")
	out, errOut, err := cli("drill", "restore", "--all", "--rows", "200", "--dir", s.RestoreDir, "--port", strconv.Itoa(backuptest.FreePort(t)), "-o", "json", "--report", page)
	var reps []struct {
		Site   string `json:"site"`
		Pass   bool   `json:"pass"`
		Counts []struct {
			Table          string
			Site           string
			Live, Restored int64
		} `json:"counts"`
	}
	if jerr := json.Unmarshal([]byte(out), &reps); err != nil || jerr != nil || len(reps) != 1 || !reps[0].Pass {
		t.Fatalf("drill restore --all -o json: %v %v\n%s%s", err, jerr, out, errOut)
	}
	found := false
	for _, c := range reps[0].Counts {
		// The first drill's 300 rows after its point, and this one's 200 before it.
		found = found || c.Table == "sitectl_backup_drill" && c.Site == "douala" && c.Live == 500 && c.Restored == 500
	}
	if !found {
		t.Fatalf("no count of sitectl_backup_drill/douala with 500 rows live and restored: %+v", reps[0].Counts)
	}
	if b, err := os.ReadFile(page); err != nil || !strings.Contains(string(b), `<span class="pass">PASS</span>`) || !strings.Contains(string(b), "<td>sitectl_backup_drill</td><td>douala</td><td>500</td><td>500</td>") {
		t.Fatalf("--report page: %v\n%s", err, b)
	}
	if entries, _ := os.ReadDir(s.RestoreDir); len(entries) != 0 {
		t.Fatalf("scratch left after the drills: %v", entries)
	}

	ctx := context.Background()
	live, err := pgx.ConnectConfig(ctx, s.LiveConfig(t, "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Close(ctx) }()
	if _, err := live.Exec(ctx, "CREATE TABLE orders (id int PRIMARY KEY, site text); INSERT INTO orders SELECT g, 'douala' FROM generate_series(1, 500) g"); err != nil {
		t.Fatal(err)
	}
	var before time.Time
	if err := live.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&before); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := live.Exec(ctx, "DELETE FROM orders WHERE site = 'douala'"); err != nil {
		t.Fatal(err)
	}
	port := backuptest.FreePort(t)
	began := time.Now()
	out, errOut, err = cli("restore", "--site", "douala", "--time", before.UTC().Format(time.RFC3339Nano), "--dir", s.RestoreDir, "--port", strconv.Itoa(port))
	if err != nil {
		t.Fatalf("restore: %v\n%s%s", err, out, errOut)
	}
	t.Logf("FIGURE sitectl restore (switch-wal, recover, scratch start and replay): %s\n%s", time.Since(began).Round(time.Millisecond), out)
	dsn := fmt.Sprintf("host=127.0.0.1 port=%d user=sitectl dbname=app sslmode=disable", port)
	if !strings.Contains(out, dsn) {
		t.Fatalf("restore does not print how to reach the scratch server (%s):\n%s", dsn, out)
	}
	cfg, _ := pgx.ParseConfig(dsn)
	cfg.Password = s.Password
	scratch, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var restored, left int
	err = scratch.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&restored)
	_ = scratch.Close(ctx)
	if err2 := live.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&left); err != nil || err2 != nil || restored != 500 || left != 0 {
		t.Fatalf("want the 500 deleted rows in scratch and none live, got %d in scratch (%v), %d live (%v)", restored, err, left, err2)
	}
	// Remove the scratch server the way the command says.
	for _, line := range strings.Split(out, "\n") {
		if cmd, ok := strings.CutPrefix(line, "Remove it: "); ok {
			if b, err := runShell(cmd); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, b)
			}
		}
	}
	if entries, _ := os.ReadDir(s.RestoreDir); len(entries) != 0 {
		t.Fatalf("restore dir not empty after removal: %v", entries)
	}
	if _, err := live.Exec(ctx, "DROP TABLE orders"); err != nil {
		t.Fatal(err)
	}
	testRestoreReplace(t, s, dir)
	t.Run("backup server stopped", func(t *testing.T) { backupServerStopped(t, s, cli) })
}

func runShell(cmd string) ([]byte, error) {
	return exec.Command("sh", "-c", cmd).CombinedOutput()
}
