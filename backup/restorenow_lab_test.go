package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/backup/backuptest"
	"github.com/sitectl/sitectl/internal/progress"
)

// restoreToNow (a subtest of TestLabBackupPointInTimeRestore): rows committed
// just before "now", nothing written after; a restore to now brings every one of
// them back in scratch. PostgreSQL stops recovery at the first commit past the
// target time and fails when the WAL ends before one: restore commits at the live
// database while Barman closes the streamed segment (backup.RestoreOptions.Live),
// which gives it that commit, and the segment is archived without waiting for the
// site's next WAL.
func restoreToNow(t *testing.T, s *backuptest.Site) {
	ctx := context.Background()
	live, err := pgx.ConnectConfig(ctx, s.LiveConfig(t, "app"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.Close(ctx) }()
	var now time.Time
	if _, err := live.Exec(ctx, "CREATE TABLE rpo (id int PRIMARY KEY); INSERT INTO rpo SELECT generate_series(1, 100)"); err != nil {
		t.Fatal(err)
	}
	if err := live.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(s.RestoreDir, "now")
	sc := &backup.LocalScratch{Port: backuptest.FreePort(t), RunAs: "postgres"}
	defer func() {
		if err := sc.Remove(ctx); err != nil {
			t.Error(err)
		}
		_ = os.RemoveAll(dest)
	}()
	began := time.Now()
	if _, err := backup.Restore(ctx, s.Runner, s.Target, backup.RestoreOptions{Time: now, Dest: dest, Live: s.LiveConfig(t, "app"), Progress: progress.New(os.Stderr)}); err != nil {
		t.Fatal(err)
	}
	restored := time.Since(began)
	if err := sc.Start(ctx, dest); err != nil {
		t.Fatal(err)
	}
	dsn := sc.DSN("sitectl", "app")
	if err := sc.Wait(ctx, dsn, s.Password); err != nil {
		t.Fatalf("restore to now (%s), nothing written after it: %v", now.Format(time.RFC3339Nano), err)
	}
	t.Logf("FIGURE restore to now: backup.Restore %s, scratch start and replay %s", restored.Round(time.Millisecond), (time.Since(began) - restored).Round(time.Millisecond))
	cfg, _ := pgx.ParseConfig(dsn)
	cfg.Password = s.Password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM rpo").Scan(&n); err != nil || n != 100 {
		t.Fatalf("restored to now: %d of the 100 rows committed just before (%v)", n, err)
	}
}
