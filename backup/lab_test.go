package backup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/sites"
)

// localSite is a real PostgreSQL 15 server standing for a site's database, backed
// up by a real Barman 3.4 configured from the rendered files, on this host.
type localSite struct {
	t        *testing.T
	dir      string
	port     int
	password string
	target   Target
	runner   Local
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// startLocalSite starts the site's server and Barman's WAL streaming.
func startLocalSite(t *testing.T, site string) *localSite {
	t.Helper()
	for _, p := range []string{"barman", "runuser", filepath.Join(PGBinDir, "initdb")} {
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
	s := &localSite{t: t, dir: dir, port: freePort(t), password: "drill-pw-" + site}
	b := sites.Backup{Server: "cloud", Schedule: sites.DefaultBackupSchedule, RetentionDays: 7, MinimumRedundancy: 1,
		Volume: "barman-" + site, MaxSlotWALKeepSize: "1GB", User: "barman", Password: sites.SecretRef{Env: "UNUSED"}}
	s.target = Target{Site: site, Host: "127.0.0.1", Port: s.port, Database: "app", SSLMode: "disable", User: b.User, Slot: b.SlotName(site), Backup: b}

	pg := filepath.Join(dir, "pg")
	home := filepath.Join(dir, "barman")
	for _, d := range []string{pg, home, filepath.Join(dir, "barman.d"), filepath.Join(dir, "restore")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "chown", "postgres:", pg)
	run(t, "chown", "barman:", home, filepath.Join(dir, "barman.d"), filepath.Join(dir, "restore"))
	writeFile(t, filepath.Join(pg, "pw"), "postgres", s.password+"\n", 0o600)
	run(t, "runuser", "-u", "postgres", "--", filepath.Join(PGBinDir, "initdb"), "-D", filepath.Join(pg, "data"), "-A", "scram-sha-256", "--pwfile", filepath.Join(pg, "pw"), "-U", "sitectl")
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nwal_level = replica\nmax_wal_senders = 5\nmax_replication_slots = 5\nmax_slot_wal_keep_size = %s\n", s.port, pg, b.MaxSlotWALKeepSize)
	appendFile(t, filepath.Join(pg, "data", "postgresql.conf"), conf)
	server := &sites.Site{Name: "cloud", LAN: "127.0.0.1/32"}
	hba := HBALines(&sites.Site{Name: site, Postgres: sites.Postgres{Database: "app"}, Backup: b}, server)
	appendFile(t, filepath.Join(pg, "data", "pg_hba.conf"), strings.Join(hba, "\n")+"\n")
	run(t, "runuser", "-u", "postgres", "--", filepath.Join(PGBinDir, "pg_ctl"), "-D", filepath.Join(pg, "data"), "-l", filepath.Join(pg, "log"), "-w", "start")
	t.Cleanup(s.cleanup)

	ctx := context.Background()
	admin := s.conn(t, "postgres")
	if _, err := admin.Exec(ctx, "CREATE DATABASE app"); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close(ctx)
	app := s.conn(t, "app")
	defer func() { _ = app.Close(ctx) }()
	for _, q := range append(RoleSQL(b.User), PasswordSQL(b.User, []byte("barman-pw"))) {
		if _, err := app.Exec(ctx, q); err != nil {
			t.Fatalf("role: %v", err)
		}
	}

	g := Global{Home: home, ConfigDir: filepath.Join(dir, "barman.d"), LogFile: filepath.Join(home, "barman.log"), User: "barman"}
	writeFile(t, filepath.Join(dir, "barman.conf"), "root", string(GlobalConf(g)), 0o644)
	writeFile(t, filepath.Join(g.ConfigDir, site+".conf"), "barman", string(ServerConf(s.target)), 0o644)
	writeFile(t, filepath.Join(home, ".pgpass"), "barman", PgpassLine(s.target, []byte("barman-pw")), 0o600)
	s.runner = Local{Config: filepath.Join(dir, "barman.conf"), Env: []string{"PGPASSFILE=" + filepath.Join(home, ".pgpass")}, Label: "barman at cloud"}
	if _, err := s.runner.Barman(ctx, "cron"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *localSite) conn(t *testing.T, db string) *pgx.Conn {
	t.Helper()
	c, err := pgx.ConnectConfig(context.Background(), s.liveConfig(t, db))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *localSite) liveConfig(t *testing.T, db string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=sitectl dbname=%s sslmode=disable", s.port, db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = s.password
	return cfg
}

func (s *localSite) cleanup() {
	ctx := context.Background()
	_, _ = s.runner.Barman(ctx, "receive-wal", "--stop", s.target.Site)
	_ = exec.Command("runuser", "-u", "postgres", "--", filepath.Join(PGBinDir, "pg_ctl"), "-D", filepath.Join(s.dir, "pg", "data"), "-m", "immediate", "-w", "stop").Run()
	_ = os.RemoveAll(s.dir)
}

// waitStreaming waits until Barman streams the site's WAL through its slot.
func (s *localSite) waitStreaming(t *testing.T) Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := GetStatus(context.Background(), s.runner, s.target, time.Now())
		if st.Streaming && st.SlotOK {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("WAL streaming did not start in 60s: %+v", st)
		}
		time.Sleep(time.Second)
	}
}

func writeFile(t *testing.T, path, owner, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	run(t, "chown", owner+":", path)
}

func appendFile(t *testing.T, path, content string) {
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

// TestLabBackupPointInTimeRestore: Barman, configured from the rendered files,
// streams a real PostgreSQL's WAL through its slot and takes a base backup; status
// is red before the first backup and green after; the restore drill writes marked
// rows, notes the time, writes more and deletes the first "by mistake", restores
// to the noted time into a scratch server and finds every row before the point
// and none after, while the live database keeps the delete; a time before the
// first backup is refused naming the window; WAL streaming stopped turns status red.
func TestLabBackupPointInTimeRestore(t *testing.T) {
	labtest.Skip(t)
	ctx := context.Background()
	s := startLocalSite(t, "douala")
	p := progress.New(os.Stderr)

	st := s.waitStreaming(t)
	if st.OK() || st.Last != nil || !strings.Contains(strings.Join(st.Problems, "\n"), "no base backup") {
		t.Fatalf("status before any base backup: want red with 'no base backup', got %+v", st)
	}
	began := time.Now()
	bb, err := RunBackup(ctx, s.runner, s.target, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE base backup of an empty site database: %d bytes, barman's copy %s, `backup run` %s", bb.SizeBytes, bb.Duration, time.Since(began).Round(time.Millisecond))
	st = GetStatus(ctx, s.runner, s.target, time.Now())
	if !st.OK() || st.Last == nil || st.Last.ID != bb.ID || st.WindowFrom.IsZero() {
		t.Fatalf("status after a base backup: want green with backup %s, got %+v", bb.ID, st)
	}

	rep, err := DrillRestore(ctx, DrillOptions{Live: s.liveConfig(t, "app"), Runner: s.runner, Target: s.target,
		Scratch: &LocalScratch{Port: freePort(t), RunAs: "postgres"}, Dest: filepath.Join(s.dir, "restore", "scratch"), Rows: 1000, Progress: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE drill restore: recover %s, scratch start and replay %s; report %+v", rep.RecoverTook.Round(time.Millisecond), rep.StartTook.Round(time.Millisecond), rep)
	if !rep.Pass || rep.FoundBefore != 1000 || rep.FoundAfter != 0 || rep.Deleted != 1000 || rep.LiveBefore != 0 {
		t.Fatalf("drill restore: want 1000 rows before the point restored, none after, the live delete kept; got %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "restore", "scratch")); !os.IsNotExist(err) {
		t.Fatalf("the scratch copy was not removed: %v", err)
	}

	_, err = Restore(ctx, s.runner, s.target, RestoreOptions{Time: bb.Begin.Add(-time.Hour), Dest: filepath.Join(s.dir, "restore", "early")})
	var ow *OutsideWindowError
	if !errors.As(err, &ow) || !strings.Contains(err.Error(), "outside the recovery window") {
		t.Fatalf("restore before the first backup: want the recovery window named, got %v", err)
	}

	if _, err := s.runner.Barman(ctx, "receive-wal", "--stop", s.target.Site); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = GetStatus(ctx, s.runner, s.target, time.Now())
		if !st.Streaming {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streaming still reported 30s after receive-wal was stopped: %+v", st)
		}
		time.Sleep(time.Second)
	}
	if st.OK() || !strings.Contains(strings.Join(st.Problems, "\n"), "WAL streaming is") {
		t.Fatalf("status with streaming stopped: want red naming WAL streaming, got %+v", st)
	}
}
