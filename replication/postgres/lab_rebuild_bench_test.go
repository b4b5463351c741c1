package postgres

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
)

// BenchmarkLabRebuildSpoke measures `site rebuild` of a spoke holding 200,000 rows of
// its own (SITECTL_BENCH_REBUILD_ROWS sets another number) on three real PostgreSQL
// 15 clusters (replication through the tests' proxies), against `pg_dump --data-only
// | psql` of the same rows from the hub into an empty database over the same path,
// in the same run. Reported: seconds of each and their ratio; with -v, each step's
// time and the plan's.
// Run with: go test -run '^$' -bench LabRebuildSpoke -benchtime 1x ./replication/postgres
func BenchmarkLabRebuildSpoke(b *testing.B) {
	rows := 200_000
	if v := os.Getenv("SITECTL_BENCH_REBUILD_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10_000 || n%10_000 != 0 {
			b.Fatalf("SITECTL_BENCH_REBUILD_ROWS=%q: want a multiple of 10000, at least 10000 (e.g. 1000000)", v)
		}
		rows = n
	}
	ctx := context.Background()
	l := startLab(b)
	l.reconcile(ctx)
	l.waitStreaming(time.Minute)
	// UUIDv7 keys, as the application mints them (the verification compares the
	// rows keyed before it started: with random keys it would compare almost none).
	for done := 0; done < rows; done += 10_000 {
		l.exec("douala", `INSERT INTO public.orders (id, site, amount)
			SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid, 'douala', g
			FROM (SELECT g, md5(random()::text) AS h FROM generate_series(1, 10000) g) s`)
	}
	l.waitConverged("public.orders", int64(rows), 5*time.Minute+time.Duration(rows)*time.Millisecond)
	var rebuild, dump time.Duration
	for i := 0; i < b.N; i++ {
		l.lose("douala")
		planAt := time.Now()
		r := l.planRebuild(ctx, "douala", RebuildOptions{})
		b.Logf("%8s  plan", time.Since(planAt).Round(time.Millisecond))
		began := time.Now()
		// Each step's time, logged: where the rebuild spends it.
		if err := r.Run(ctx, func(st plan.Step) func(error) {
			at := time.Now()
			return func(error) { b.Logf("%8s  %s %s", time.Since(at).Round(time.Millisecond), st.Site, st.Name) }
		}); err != nil {
			b.Fatal(err)
		}
		took := time.Since(began)
		rebuild += took
		d := l.dumpRestore(l.clusters["cloud"], l.clusters["douala"], fmt.Sprintf("bench%d", i))
		dump += d
		b.Logf("rebuild %s, pg_dump | psql %s, ratio %.2f", took.Round(time.Millisecond), d.Round(time.Millisecond), took.Seconds()/d.Seconds())
	}
	n := float64(b.N)
	b.ReportMetric(rebuild.Seconds()/n, "s-rebuild")
	b.ReportMetric(dump.Seconds()/n, "s-pg_dump|psql")
	b.ReportMetric(rebuild.Seconds()/dump.Seconds(), "ratio")
}

// dumpRestore times pg_dump --data-only of public.orders from src piped into psql
// on a new database of dst with the schema applied, both through the proxies.
func (l *lab) dumpRestore(src, dst *pgtest.Cluster, db string) time.Duration {
	l.t.Helper()
	l.exec("douala", "CREATE DATABASE "+db)
	schema, err := os.ReadFile(filepath.Join(l.dir, "schema.sql"))
	if err != nil {
		l.t.Fatal(err)
	}
	env := append(os.Environ(), "PGPASSWORD="+testPassword)
	psql := func(args ...string) *exec.Cmd {
		c := exec.Command(filepath.Join(pgtest.BinDir, "psql"), append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.2", "-p", strconv.Itoa(dst.Port), "-U", "sitectl", "-d", db}, args...)...)
		c.Env = env
		return c
	}
	if out, err := psql("-c", string(schema)).CombinedOutput(); err != nil {
		l.t.Fatalf("schema: %v: %s", err, out)
	}
	dump := exec.Command(filepath.Join(pgtest.BinDir, "pg_dump"), "--data-only", "-t", "public.orders", "-h", "127.0.0.2", "-p", strconv.Itoa(src.Port), "-U", "sitectl", "-d", "app")
	dump.Env = env
	restore := psql()
	pipe, err := dump.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	restore.Stdin = pipe
	began := time.Now()
	if err := dump.Start(); err != nil {
		l.t.Fatal(err)
	}
	if out, err := restore.CombinedOutput(); err != nil {
		l.t.Fatalf("psql: %v: %s", err, out)
	}
	if err := dump.Wait(); err != nil {
		l.t.Fatalf("pg_dump: %v", err)
	}
	return time.Since(began)
}
