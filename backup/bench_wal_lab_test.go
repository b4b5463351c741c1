package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/backup/backuptest"
	"github.com/sitectl/sitectl/lab/labtest"
)

// The drills' write loads: the failover drills write --writes 1000 rows per site
// paced over 80% of --duration 60s (one row per transaction, ~21/s); the restore
// drill writes --rows 1000 marked rows in one COPY, then 1000 more.
const (
	pacedInterval = 48 * time.Second / 1000
	drillBatch    = 1000
)

func createDrillTable(ctx context.Context, b *testing.B, c *pgxpool.Pool) {
	b.Helper()
	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+backup.DrillTable+` (id uuid PRIMARY KEY, drill uuid NOT NULL, site text NOT NULL, phase text NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
		b.Fatal(err)
	}
}

// writeLoad writes rows until ctx ends: "paced" one row per transaction every
// pacedInterval, "batch" COPYs of drillBatch rows back to back, "commits" one row
// per transaction as fast as it goes. It adds the rows written to n.
func writeLoad(ctx context.Context, c *pgxpool.Pool, kind string, n *atomic.Int64) error {
	drill := uuid.NewString()
	for ctx.Err() == nil {
		var err error
		switch kind {
		case "batch":
			rows := make([][]any, drillBatch)
			for i := range rows {
				rows[i] = []any{uuid.NewString(), drill, "douala", "before"}
			}
			var got int64
			got, err = c.CopyFrom(ctx, pgx.Identifier{backup.DrillTable}, []string{"id", "drill", "site", "phase"}, pgx.CopyFromRows(rows))
			n.Add(got)
		default:
			_, err = c.Exec(ctx, "INSERT INTO "+backup.DrillTable+" (id, drill, site, phase) VALUES ($1, $2, 'douala', 'before')", uuid.NewString(), drill)
			if err == nil {
				n.Add(1)
			}
			if kind == "paced" {
				select {
				case <-ctx.Done():
				case <-time.After(pacedInterval):
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// lagSample is one marker: how long after its commit was acknowledged it was in
// Barman's WAL files, and how much WAL the site had written past it by then.
type lagSample struct {
	took  time.Duration
	bytes int64
}

// markerLag commits a marker (a transactional logical message carrying a unique
// text) and waits until its bytes are in the WAL file pg_receivewal writes in
// Barman's streaming directory (or the archive): the WAL a restore could use.
func markerLag(ctx context.Context, c *pgxpool.Pool, barmanSite string) (lagSample, error) {
	marker := []byte("sitectl-rpo-" + uuid.NewString())
	var lsn, name string
	var off int64
	err := c.QueryRow(ctx, `SELECT l::text, (pg_walfile_name_offset(l - 1)).file_name, (pg_walfile_name_offset(l - 1)).file_offset
		FROM (SELECT pg_logical_emit_message(true, 'sitectl-rpo', $1::text) AS l) m`, string(marker)).Scan(&lsn, &name, &off)
	if err != nil {
		return lagSample{}, err
	}
	acked := time.Now()
	// The record's last bytes are the marker's, then up to 7 bytes of alignment
	// (zeros). pg_receivewal's files start zero-filled, so the last non-zero byte
	// of the 8 before the record's end being the marker's last is the record
	// received (a page header may split the marker itself).
	from := max(0, off-7)
	buf := make([]byte, off+1-from)
	paths := []string{filepath.Join(barmanSite, "streaming", name+".partial"), filepath.Join(barmanSite, "streaming", name), filepath.Join(barmanSite, "wals", name[:16], name)}
	for time.Since(acked) < time.Minute {
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			k, _ := f.ReadAt(buf, from)
			_ = f.Close()
			if last := bytes.TrimRight(buf[:k], "\x00"); len(last) > 0 && last[len(last)-1] == marker[len(marker)-1] {
				s := lagSample{took: time.Since(acked)}
				err := c.QueryRow(ctx, "SELECT (pg_current_wal_lsn() - $1::pg_lsn)::bigint", lsn).Scan(&s.bytes)
				return s, err
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return lagSample{}, fmt.Errorf("marker at %s not in Barman's WAL files after a minute", lsn)
}

// replLag is what PostgreSQL reports of Barman's streamer (what `backup status`
// and the exporter show): bytes not yet written / flushed by pg_receivewal.
func replLag(ctx context.Context, c *pgxpool.Pool, slot string) (write, flush int64, err error) {
	err = c.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - r.write_lsn)::bigint, (pg_current_wal_lsn() - r.flush_lsn)::bigint
		FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1`, slot).Scan(&write, &flush)
	return write, flush, err
}

func pct(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkLabWALLag: issue 23's RPO goal. While the site writes at a drill's rate,
// every 250 ms a marker is committed and the time until its bytes are in
// pg_receivewal's file in Barman's streaming directory is measured, with the WAL
// the site wrote past it meanwhile; PostgreSQL's own view of the streamer
// (pg_stat_replication write/flush positions, what `backup status` shows) is
// sampled alongside. Loads: "paced" (the failover drills' 1000 rows per 48 s, one
// row per transaction), "batch" (the restore drill's 1000-row COPYs, back to back).
//
//	flock /tmp/sitectl-lab.lock go test -run '^$' -bench BenchmarkLabWALLag -benchtime=1x -v ./backup/
func BenchmarkLabWALLag(b *testing.B) {
	labtest.Skip(b)
	ctx := context.Background()
	s, pool := streamingSite(ctx, b)
	barmanSite := filepath.Join(s.Dir, "barman", "douala")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, kind := range []string{"paced", "batch"} {
			lctx, stop := context.WithTimeout(ctx, 15*time.Second)
			var rows atomic.Int64
			var wg sync.WaitGroup
			var loadErr error
			wg.Add(1)
			go func() { defer wg.Done(); loadErr = writeLoad(lctx, pool, kind, &rows) }()
			var lags []time.Duration
			var maxBytes, maxWrite, maxFlush int64
			var walBefore, walAfter int64
			_ = pool.QueryRow(ctx, "SELECT (pg_current_wal_lsn() - '0/0')::bigint").Scan(&walBefore)
			began := time.Now()
			for tick := time.NewTicker(250 * time.Millisecond); lctx.Err() == nil; <-tick.C {
				sm, err := markerLag(ctx, pool, barmanSite)
				if err != nil {
					b.Fatal(err)
				}
				lags, maxBytes = append(lags, sm.took), max(maxBytes, sm.bytes)
				if w, f, err := replLag(ctx, pool, s.Target.Slot); err == nil {
					maxWrite, maxFlush = max(maxWrite, w), max(maxFlush, f)
				} else if !errors.Is(err, pgx.ErrNoRows) {
					b.Fatal(err)
				}
			}
			wg.Wait()
			stop()
			if loadErr != nil {
				b.Fatal(loadErr)
			}
			secs := time.Since(began).Seconds()
			_ = pool.QueryRow(ctx, "SELECT (pg_current_wal_lsn() - '0/0')::bigint").Scan(&walAfter)
			b.Logf("FIGURE WAL lag, %s load (%.0f rows/s, WAL %.2f MiB/s): %d markers, acknowledged → in Barman's WAL file: median %s, p95 %s, max %s; WAL written meanwhile max %d bytes; pg_stat_replication lag max: write %d bytes, flush %d bytes",
				kind, float64(rows.Load())/secs, float64(walAfter-walBefore)/secs/(1<<20), len(lags), r1(pct(lags, 0.5)), r1(pct(lags, 0.95)), r1(slices.Max(lags)), maxBytes, maxWrite, maxFlush)
			b.ReportMetric(slices.Max(lags).Seconds(), "s-maxlag-"+kind)
			b.ReportMetric(float64(maxBytes), "B-maxlag-"+kind)
		}
	}
}

func r1(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func poolConfig(b *testing.B, s *backuptest.Site) *pgxpool.Config {
	b.Helper()
	cfg, err := pgxpool.ParseConfig("")
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig = s.LiveConfig(b, "app")
	cfg.MaxConns = 8
	return cfg
}

// setStreaming starts (barman cron) or stops (receive-wal --stop) Barman's WAL
// streaming and waits until the site's database sees its walsender go, or come
// and catch up to within 1 MiB.
func setStreaming(ctx context.Context, b *testing.B, s *backuptest.Site, pool *pgxpool.Pool, on bool) {
	b.Helper()
	args := []string{"receive-wal", "--stop", "douala"}
	if on {
		args = []string{"cron"}
	}
	if _, err := s.Runner.Barman(ctx, args...); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var active bool
		if err := pool.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", s.Target.Slot).Scan(&active); err != nil {
			b.Fatal(err)
		}
		if !on && !active {
			return
		}
		if on && active {
			// Streaming again: wait until pg_receivewal has caught up with the WAL
			// written while it was stopped, so the catch-up is not measured.
			var behind bool
			err := pool.QueryRow(ctx, `SELECT coalesce(r.write_lsn < pg_current_wal_lsn() - 1048576, true)
				FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1`, s.Target.Slot).Scan(&behind)
			if err != nil {
				b.Fatal(err)
			}
			if !behind {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("slot %s active %v a minute after %v", s.Target.Slot, active, args)
		}
	}
}

// BenchmarkLabWriteThroughput: issue 23's backup overhead goal. The site's write
// throughput with Barman streaming its WAL and without (receive-wal stopped), in
// one run, alternating with, without, with, without: 4 connections committing one
// row per transaction as fast as they go ("commits"), then one connection writing
// the restore drill's 1000-row COPYs back to back ("batch"), 8 s each.
//
//	flock /tmp/sitectl-lab.lock go test -run '^$' -bench BenchmarkLabWriteThroughput -benchtime=1x -v ./backup/
func BenchmarkLabWriteThroughput(b *testing.B) {
	labtest.Skip(b)
	ctx := context.Background()
	s, pool := streamingSite(ctx, b)
	rate := map[string][]float64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, on := range []bool{true, false, true, false} {
			setStreaming(ctx, b, s, pool, on)
			mode := map[bool]string{true: "streaming", false: "not streaming"}[on]
			for _, load := range []struct {
				kind  string
				conns int
			}{{"commits", 4}, {"batch", 1}} {
				lctx, stop := context.WithTimeout(ctx, 8*time.Second)
				var rows atomic.Int64
				var wg sync.WaitGroup
				errs := make([]error, load.conns)
				began := time.Now()
				for c := range load.conns {
					wg.Add(1)
					go func() { defer wg.Done(); errs[c] = writeLoad(lctx, pool, load.kind, &rows) }()
				}
				wg.Wait()
				stop()
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
				rps := float64(rows.Load()) / time.Since(began).Seconds()
				key := load.kind + "/" + mode
				rate[key] = append(rate[key], rps)
				b.Logf("FIGURE write throughput, %s, %s: %.0f rows/s", load.kind, mode, rps)
			}
		}
	}
	for _, kind := range []string{"commits", "batch"} {
		with, without := mean(rate[kind+"/streaming"]), mean(rate[kind+"/not streaming"])
		b.Logf("FIGURE write throughput, %s: streaming %.0f rows/s, not streaming %.0f rows/s (runs %v / %v): streaming costs %.1f%%",
			kind, with, without, rate[kind+"/streaming"], rate[kind+"/not streaming"], 100*(1-with/without))
		b.ReportMetric(with, "rows/s-"+kind+"-streaming")
		b.ReportMetric(without, "rows/s-"+kind+"-not-streaming")
	}
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(max(1, len(xs)))
}

// streamingSite starts douala's PostgreSQL with Barman streaming its WAL and the
// drill's table, and returns a pool to it (closed at the benchmark's end).
func streamingSite(ctx context.Context, b *testing.B) (*backuptest.Site, *pgxpool.Pool) {
	s := backuptest.Start(b, "douala")
	s.WaitStreaming(b)
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig(b, s))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	createDrillTable(ctx, b, pool)
	return s, pool
}
