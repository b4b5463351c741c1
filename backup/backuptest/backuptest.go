// Package backuptest gives lab tests a real site database backed up by a real
// Barman on this host: PostgreSQL 15 and Barman 3.4 configured from sitectl's
// rendered files, role SQL and pg_hba lines. Needs root (runuser, chown).
package backuptest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/sites"
)

// Site is a real PostgreSQL 15 server standing for a site's database (user sitectl,
// database app), backed up by a real Barman streaming from it.
type Site struct {
	Dir      string
	Port     int
	Password string
	Target   backup.Target
	Runner   backup.Local
	// BarmanConfig is barman.conf; PGPassFile Barman's password file; RestoreDir a
	// directory Barman may restore into.
	BarmanConfig, PGPassFile, RestoreDir string
}

// FreePort is a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Start starts the site's server and Barman's WAL streaming (barman cron); both are
// stopped and removed when the test ends.
func Start(t testing.TB, site string) *Site { return StartWith(t, site, nil) }

// StartWith is Start with extra server settings (e.g. replication.ServerSettings
// for a site that also replicates), written after the test's own.
func StartWith(t testing.TB, site string, settings map[string]string) *Site {
	t.Helper()
	for _, p := range []string{"barman", "runuser", filepath.Join(backup.PGBinDir, "initdb")} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is missing: run hack/install-deps.sh (barman, postgresql-15)", p)
		}
	}
	dir, err := os.MkdirTemp("", "sitectl-backup-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Site{Dir: dir, Port: FreePort(t), Password: "drill-pw-" + site, RestoreDir: filepath.Join(dir, "restore")}
	b := sites.Backup{Server: "cloud", Schedule: sites.DefaultBackupSchedule, RetentionDays: 7, MinimumRedundancy: 1,
		Volume: "barman-" + site, MaxSlotWALKeepSize: "1GB", User: "barman", Password: sites.SecretRef{Env: "UNUSED"}}
	s.Target = backup.Target{Site: site, Host: "127.0.0.1", Port: s.Port, Database: "app", SSLMode: "disable", User: b.User, Slot: b.SlotName(site), Backup: b}

	pg, home, confDir := filepath.Join(dir, "pg"), filepath.Join(dir, "barman"), filepath.Join(dir, "barman.d")
	for _, d := range []string{pg, home, confDir, s.RestoreDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "chown", "postgres:", pg)
	run(t, "chown", "barman:", home, confDir, s.RestoreDir)
	writeFile(t, filepath.Join(pg, "pw"), "postgres", s.Password+"\n", 0o600)
	run(t, "runuser", "-u", "postgres", "--", filepath.Join(backup.PGBinDir, "initdb"), "-D", filepath.Join(pg, "data"), "-A", "scram-sha-256", "--pwfile", filepath.Join(pg, "pw"), "-U", "sitectl")
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nwal_level = replica\nmax_wal_senders = 5\nmax_replication_slots = 5\nmax_slot_wal_keep_size = %s\n", s.Port, pg, b.MaxSlotWALKeepSize)
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		conf += fmt.Sprintf("%s = '%s'\n", k, strings.ReplaceAll(settings[k], "'", "''"))
	}
	appendFile(t, filepath.Join(pg, "data", "postgresql.conf"), conf)
	server := &sites.Site{Name: "cloud", LAN: "127.0.0.1/32"}
	hba := backup.HBALines(&sites.Site{Name: site, Postgres: sites.Postgres{Database: "app"}, Backup: b}, server)
	appendFile(t, filepath.Join(pg, "data", "pg_hba.conf"), strings.Join(hba, "\n")+"\n")
	run(t, "runuser", "-u", "postgres", "--", filepath.Join(backup.PGBinDir, "pg_ctl"), "-D", filepath.Join(pg, "data"), "-l", filepath.Join(pg, "log"), "-w", "start")
	t.Cleanup(s.cleanup)

	ctx := context.Background()
	admin := s.conn(t, "postgres")
	if _, err := admin.Exec(ctx, "CREATE DATABASE app"); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close(ctx)
	app := s.conn(t, "app")
	defer func() { _ = app.Close(ctx) }()
	for _, q := range append(backup.RoleSQL(b.User), backup.PasswordSQL(b.User, []byte("barman-pw"))) {
		if _, err := app.Exec(ctx, q); err != nil {
			t.Fatalf("role: %v", err)
		}
	}

	g := backup.Global{Home: home, ConfigDir: confDir, LogFile: filepath.Join(home, "barman.log"), User: "barman"}
	s.BarmanConfig, s.PGPassFile = filepath.Join(dir, "barman.conf"), filepath.Join(home, ".pgpass")
	writeFile(t, s.BarmanConfig, "root", string(backup.GlobalConf(g)), 0o644)
	writeFile(t, filepath.Join(confDir, site+".conf"), "barman", string(backup.ServerConf(s.Target)), 0o644)
	writeFile(t, s.PGPassFile, "barman", backup.PgpassLine(s.Target, []byte("barman-pw")), 0o600)
	s.Runner = backup.Local{Config: s.BarmanConfig, Env: []string{"PGPASSFILE=" + s.PGPassFile}, Label: "barman at cloud"}
	if _, err := s.Runner.Barman(ctx, "cron"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *Site) conn(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	c, err := pgx.ConnectConfig(context.Background(), s.LiveConfig(t, db))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// LiveConfig reaches the site's database db as its superuser sitectl.
func (s *Site) LiveConfig(t testing.TB, db string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=sitectl dbname=%s sslmode=disable", s.Port, db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = s.Password
	return cfg
}

func (s *Site) cleanup() {
	ctx := context.Background()
	_, _ = s.Runner.Barman(ctx, "receive-wal", "--stop", s.Target.Site)
	_ = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(backup.PGBinDir, "pg_ctl"), "-D", filepath.Join(s.Dir, "pg", "data"), "-m", "immediate", "-w", "stop").Run()
	_ = os.RemoveAll(s.Dir)
}

// WaitStreaming waits until Barman streams the site's WAL through its slot.
func (s *Site) WaitStreaming(t testing.TB) backup.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := backup.GetStatus(context.Background(), s.Runner, s.Target, time.Now())
		if st.Streaming && st.SlotOK {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL streaming did not start in 60s: %+v", st)
		}
		time.Sleep(time.Second)
	}
}

func writeFile(t testing.TB, path, owner, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	run(t, "chown", owner+":", path)
}

func appendFile(t testing.TB, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}
