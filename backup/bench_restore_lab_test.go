package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/backup/backuptest"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab/labtest"
)

// timedRunner records how long each barman command (by its first argument) took.
type timedRunner struct {
	backup.Runner
	mu   sync.Mutex
	took map[string]time.Duration
}

func (r *timedRunner) Barman(ctx context.Context, args ...string) ([]byte, error) {
	began := time.Now()
	out, err := r.Runner.Barman(ctx, args...)
	name := args[0]
	if name == "-f" && len(args) > 2 {
		name = args[2]
	}
	r.mu.Lock()
	r.took[name] += time.Since(began)
	r.mu.Unlock()
	return out, err
}

// benchRows is the site database's size for the restore goal: 1,000,000 rows.
const benchRows = 1_000_000

// BenchmarkLabRestore1M: issue 23's goal "restore of a site's database with
// 1,000,000 rows: at most 1.2× the time of Barman's own recover of the same
// backup". One base backup of a database holding 1,000,000 rows, WAL written after
// it up to the point and past it; then, in the same run, the same point restored
// (a) by Barman's own `barman recover --target-time T --target-action promote`
// followed by PostgreSQL started on the copy until it has replayed to T and been
// promoted, and (b) by sitectl's backup.Restore (list the backups, pick one and
// check the window, close the streamed WAL segment, the same recover) followed by
// the same scratch start. Both copies are checked to hold the rows as of T. Each
// iteration runs both orders (Barman first, then sitectl first): the first restore
// of a pair may read the backup from disk, the second from the page cache.
//
//	flock /tmp/sitectl-lab.lock go test -run '^$' -bench BenchmarkLabRestore1M -benchtime=1x -v ./backup/
func BenchmarkLabRestore1M(b *testing.B) {
	labtest.Skip(b)
	ctx := context.Background()
	s := backuptest.Start(b, "douala")
	s.WaitStreaming(b)
	live, err := pgx.ConnectConfig(ctx, s.LiveConfig(b, "app"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = live.Close(ctx) }()
	began := time.Now()
	if _, err := live.Exec(ctx, `CREATE TABLE orders (id bigint PRIMARY KEY, site text NOT NULL, placed_at timestamptz NOT NULL, amount numeric(12,2) NOT NULL, note text NOT NULL);
		INSERT INTO orders SELECT g, 'douala', now() - g * interval '1 second', (g % 100000) / 100.0, md5(g::text) FROM generate_series(1, `+fmt.Sprint(benchRows)+`) g`); err != nil {
		b.Fatal(err)
	}
	var dbSize int64
	if err := live.QueryRow(ctx, "SELECT pg_database_size('app')").Scan(&dbSize); err != nil {
		b.Fatal(err)
	}
	b.Logf("FIGURE loaded %d rows (database %.0f MiB) in %s", benchRows, float64(dbSize)/(1<<20), time.Since(began).Round(time.Millisecond))
	bb, err := backup.RunBackup(ctx, s.Runner, s.Target, progress.New(os.Stderr))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("FIGURE base backup %s: %.0f MiB, barman's copy %s", bb.ID, float64(bb.SizeBytes)/(1<<20), bb.Duration)
	// WAL after the backup, up to the point and past it: the restore replays it.
	write := func(from, n int) {
		if _, err := live.Exec(ctx, fmt.Sprintf("INSERT INTO orders SELECT g, 'douala', now(), 1, md5(g::text) FROM generate_series(%d, %d) g", from, from+n-1)); err != nil {
			b.Fatal(err)
		}
	}
	write(benchRows+1, 10_000)
	var point time.Time
	if err := live.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&point); err != nil {
		b.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	write(benchRows+10_001, 10_000)
	// Barman's own recover needs the WAL past the point archived: close the segment.
	if _, err := s.Runner.Barman(ctx, "switch-wal", "--archive", "--archive-timeout", "60", "douala"); err != nil {
		b.Fatal(err)
	}
	want := benchRows + 10_000
	target := point.UTC().Format("2006-01-02 15:04:05.999999-07:00")

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, barmanFirst := range []bool{true, false} {
			run := 2*i + k
			// A live site keeps writing: sitectl's switch-wal has a segment to close.
			write(benchRows+20_001+run*100, 100)
			var own, ours phases
			if barmanFirst {
				own = barmanOwn(ctx, b, s, bb.ID, target, want, run)
				ours = sitectlRestore(ctx, b, s, point, want, run)
			} else {
				ours = sitectlRestore(ctx, b, s, point, want, run)
				own = barmanOwn(ctx, b, s, bb.ID, target, want, run)
			}
			b.Logf("FIGURE run %d (%s first): barman's own: recover %s, start+replay+promote %s, total %s | sitectl: list-backups %s, switch-wal %s, recover %s, other %s, start+replay+promote %s, total %s | ratio restore/recover %.2f, total %.2f",
				run, map[bool]string{true: "barman", false: "sitectl"}[barmanFirst],
				r(own.recover), r(own.start), r(own.total()),
				r(ours.list), r(ours.switchWAL), r(ours.recover), r(ours.other), r(ours.start), r(ours.total()),
				float64(ours.restore())/float64(own.recover), float64(ours.total())/float64(own.total()))
			b.ReportMetric(float64(ours.total())/float64(own.total()), fmt.Sprintf("ratio-total-%d", k))
			b.ReportMetric(float64(ours.restore())/float64(own.recover), fmt.Sprintf("ratio-restore/recover-%d", k))
		}
	}
}

func r(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

// phases of one restore; restore is the part before the scratch server starts.
type phases struct{ list, switchWAL, recover, other, start time.Duration }

func (p phases) restore() time.Duration { return p.list + p.switchWAL + p.recover + p.other }
func (p phases) total() time.Duration   { return p.restore() + p.start }

// startAndCheck starts the scratch server on dir, waits for the promotion, checks
// it holds want rows in orders, and removes it; it returns the start's duration.
func startAndCheck(ctx context.Context, b *testing.B, s *backuptest.Site, dir string, want int) time.Duration {
	b.Helper()
	sc := &backup.LocalScratch{Port: backuptest.FreePort(b), RunAs: "postgres"}
	defer func() {
		if err := sc.Remove(context.WithoutCancel(ctx)); err != nil {
			b.Error(err)
		}
	}()
	began := time.Now()
	if err := sc.Start(ctx, dir); err != nil {
		b.Fatal(err)
	}
	dsn := sc.DSN("sitectl", "app")
	if err := sc.Wait(ctx, dsn, s.Password); err != nil {
		b.Fatal(err)
	}
	took := time.Since(began)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Password = s.Password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close(ctx) }()
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != want {
		b.Fatalf("restored copy in %s holds %d rows (%v), want %d as of the point", dir, n, err, want)
	}
	return took
}

func barmanOwn(ctx context.Context, b *testing.B, s *backuptest.Site, id, target string, want, i int) phases {
	b.Helper()
	dir := filepath.Join(s.RestoreDir, fmt.Sprintf("barman-%d", i))
	began := time.Now()
	if _, err := s.Runner.Barman(ctx, "recover", "--target-time", target, "--target-action", "promote", "douala", id, dir); err != nil {
		b.Fatal(err)
	}
	p := phases{recover: time.Since(began)}
	p.start = startAndCheck(ctx, b, s, dir, want)
	return p
}

func sitectlRestore(ctx context.Context, b *testing.B, s *backuptest.Site, point time.Time, want, i int) phases {
	b.Helper()
	tr := &timedRunner{Runner: s.Runner, took: map[string]time.Duration{}}
	dir := filepath.Join(s.RestoreDir, fmt.Sprintf("sitectl-%d", i))
	began := time.Now()
	if _, err := backup.Restore(ctx, tr, s.Target, backup.RestoreOptions{Time: point, Dest: dir, Live: s.LiveConfig(b, "app"), Progress: progress.New(os.Stderr)}); err != nil {
		b.Fatal(err)
	}
	total := time.Since(began)
	p := phases{list: tr.took["list-backups"], switchWAL: tr.took["switch-wal"], recover: tr.took["recover"]}
	p.other = total - p.list - p.switchWAL - p.recover
	p.start = startAndCheck(ctx, b, s, dir, want)
	return p
}
