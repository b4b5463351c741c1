package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
)

// TestLabSiteRebuild loses a spoke, then the hub, on three real PostgreSQL 15
// clusters replicating; each time the lost site's database is replaced by a new,
// empty cluster and rebuilt from its peers: counts and checksums per table and owner
// equal everywhere, new writes replicate both ways, a plain plan then has nothing to
// do, and the old instance, pointed at again, is refused (fenced). The hub's rebuild
// is interrupted half-way and re-run.
func TestLabSiteRebuild(t *testing.T) {
	ctx := context.Background()
	l := startLab(t)
	l.reconcile(ctx)
	l.waitStreaming(time.Minute)
	for _, s := range l.topo.SiteNames() {
		l.insertOrders(s, 300)
	}
	l.waitConverged("public.orders", 900, time.Minute)

	// Checksums: the rows' hash, or, for a table with a column of a type without a
	// hash function, their md5 (labelled so).
	l.exec("yaounde", `CREATE TABLE public.sumcheck (id int PRIMARY KEY, site text, doc json)`)
	l.exec("yaounde", `INSERT INTO public.sumcheck SELECT g, 'yaounde', '{"a": 1}' FROM generate_series(1, 3) g`)
	for table, prefix := range map[string]string{"public.orders": "", "public.sumcheck": "md5:"} {
		sums, err := rowSumsByOwner(ctx, l.pool("yaounde"), table, "true")
		if s := sums["yaounde"]; err != nil || s.Rows == 0 || !strings.HasPrefix(s.Checksum, prefix) || (prefix == "" && strings.Contains(s.Checksum, ":")) {
			t.Errorf("checksum of %s: %+v, %v; want rows and a checksum prefixed %q", table, s, err, prefix)
		}
	}
	l.exec("yaounde", `DROP TABLE public.sumcheck`)

	// Lose douala: its old instance is cut off (it keeps a few rows that never left
	// it), the others keep writing, a new empty cluster takes its place.
	old := l.lose("douala")
	l.insertOrders("cloud", 100)
	l.insertOrders("yaounde", 100)

	// A plain plan refuses the empty replacement: a deploy would drop the hub's copy
	// of douala's rows.
	p := l.plan(ctx)
	var lost *LostError
	if !errors.As(p.Err(), &lost) || lost.Site != "douala" || !strings.Contains(p.Err().Error(), "sitectl site rebuild douala") {
		t.Fatalf("plan of an empty replacement: want a LostError naming site rebuild, got %v", p.Err())
	}
	// Nor does a replacement holding a few of its rows (a stale volume put back)
	// pass: it is refused as lost, and rebuilt only with --force.
	if err := applySchema(ctx, l.topo, "douala", l.pool("douala")); err != nil {
		t.Fatal(err)
	}
	l.insertOrders("douala", 3)
	if p := l.plan(ctx); !errors.As(p.Err(), &lost) || lost.Own != 3 {
		t.Errorf("plan of a replacement holding 3 rows: want a LostError (3 held), got %v", p.Err())
	}
	if _, err := PlanRebuild(ctx, l.topo, l.sess, "douala", RebuildOptions{}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("rebuild of a replacement holding rows without --force: %v, want a refusal naming --force", err)
	}

	r := l.rebuild(ctx, "douala", RebuildOptions{Force: true})
	// The application role is made after the verification: the application cannot
	// write at the site while it is rebuilt.
	if role, verify := stepIndex(r, "application role"), stepIndex(r, "verify"); role < verify {
		t.Errorf("rebuild douala: the application role is step %d, the verification %d: the application could write mid-way", role, verify)
	}
	// The subscription's initial copy runs while douala's own rows are copied back.
	if sub, own, wait := stepIndex(r, "subscription sitectl_cloud_to_douala"), stepIndex(r, "rows of douala from"), stepIndex(r, "initial copy of sitectl_cloud_to_douala"); sub < 0 || sub >= own || own >= wait {
		t.Errorf("rebuild douala: subscription step %d, own rows %d, wait for the initial copy %d; want them in that order", sub, own, wait)
	}
	if r.From != 0 || r.Generation != 1 || r.OwnSource != "cloud" {
		t.Errorf("rebuild douala: generation %d → %d, own rows from %q; want 0 → 1 from cloud", r.From, r.Generation, r.OwnSource)
	}
	l.checkRebuilt(ctx, 1100)

	// The old instance comes back with its subscriptions enabled while the rebuilt
	// douala's are stopped: it must find no slot to take on the hub (the slots are
	// named per generation), so the hub's new rows wait for the rebuilt douala.
	oldRows := l.countOn(old, "SELECT count(*) FROM public.orders WHERE site = 'cloud'")
	l.setSubscriptions(l.pool("douala"), false)
	oldPool := l.connectTo("douala", old)
	defer oldPool.Close()
	l.setSubscriptions(oldPool, true)
	l.insertOrders("cloud", 20)
	time.Sleep(8 * time.Second)
	if n := l.countOn(old, "SELECT count(*) FROM public.orders WHERE site = 'cloud'"); n != oldRows {
		t.Errorf("the returning old douala consumed %d of the hub's new rows from the rebuilt douala's slot", n-oldRows)
	}
	l.setSubscriptions(l.pool("douala"), true)
	l.waitConverged("public.orders", 1180, time.Minute)

	// The old instance, pointed at again, is fenced.
	rebuilt := l.clusters["douala"]
	l.pointAt("douala", old)
	var fenced *FencedError
	if p := l.plan(ctx); !errors.As(p.Err(), &fenced) || fenced.Own != 0 || fenced.Recorded != 1 ||
		!strings.Contains(fenced.Error(), "site reconcile douala") || !strings.Contains(fenced.Error(), "retire") {
		t.Fatalf("plan of the old instance: want fenced (generation 0, recorded 1), got %v", p.Err())
	}
	l.pointAt("douala", rebuilt)

	// Its five rows that never left it are reconciled into the rebuilt douala and
	// reach every site (RPO 0); it is retired. A row of douala deleted since the
	// rebuild does not come back; a row the old instance changed is reported, and
	// the rebuilt one kept.
	l.exec("douala", `DELETE FROM public.orders WHERE id = (SELECT id FROM public.orders WHERE site = 'douala' ORDER BY id LIMIT 1)`)
	if _, err := oldPool.Exec(ctx, `UPDATE public.orders SET amount = amount + 1 WHERE id = (SELECT id FROM public.orders WHERE site = 'douala' ORDER BY id OFFSET 1 LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	rec, err := ReconcileOld(ctx, l.topo, l.sess, "douala", oldPool, 30*time.Second)
	if deleted, changed := rec.Skipped(); err != nil || rec.Rows() != 5 || deleted != 1 || changed != 1 {
		t.Errorf("reconcile the old douala: %d rows copied, %d deleted since, %d changed, %v; want 5, 1, 1", rec.Rows(), deleted, changed, err)
	}
	l.waitConverged("public.orders", 1184, time.Minute)
	if _, err := ReconcileOld(ctx, l.topo, l.sess, "douala", l.pool("douala"), time.Second); err == nil || !strings.Contains(err.Error(), "only an old instance") {
		t.Errorf("reconcile from the rebuilt instance itself: %v, want a refusal", err)
	}

	// Lose the hub; its rebuild stops half-way (after it paused its subscriptions)
	// and is re-run.
	l.lose("cloud")
	l.insertOrders("douala", 50)
	l.insertOrders("yaounde", 50)
	half := l.planRebuild(ctx, "cloud", RebuildOptions{})
	var upTo []plan.Step
	for _, st := range half.Steps {
		upTo = append(upTo, st)
		if st.Name == "pause subscriptions" {
			break
		}
	}
	if _, err := plan.Apply(ctx, upTo, nil); err != nil {
		t.Fatalf("first half of the hub's rebuild: %v", err)
	}
	var half2 *HalfRebuiltError
	if p := l.plan(ctx); !errors.As(p.Err(), &half2) {
		t.Fatalf("plan of a half-rebuilt hub: want HalfRebuiltError, got %v", p.Err())
	}
	r = l.rebuild(ctx, "cloud", RebuildOptions{})
	if !r.Resumed || r.Generation != 1 {
		t.Errorf("re-run of the hub's rebuild: resumed %v, generation %d; want resumed, 1", r.Resumed, r.Generation)
	}
	for _, c := range r.Copied {
		if c.Table == "public.orders" && c.To == "cloud" && !c.Merged && strings.Contains(c.Where, "'cloud'") {
			t.Errorf("the re-run copied cloud's rows again: %+v", c)
		}
	}
	l.checkRebuilt(ctx, 1284)

	// A rebuild stopped while it marked its generation active: the peers record
	// "active 1", the hub itself still "rebuilding 1". The re-run resumes it
	// instead of taking the complete database for a stranger's.
	l.exec("cloud", `UPDATE `+GenerationTable+` SET state = $1 WHERE site = 'cloud'`, GenRebuilding)
	r = l.rebuild(ctx, "cloud", RebuildOptions{})
	if !r.Resumed || r.Generation != 1 {
		t.Errorf("re-run after the active marks: resumed %v, generation %d; want resumed, 1", r.Resumed, r.Generation)
	}
	l.checkRebuilt(ctx, 1344) // checkRebuilt wrote 60 more

	// --force on a database that still has its slots and subscriptions: the peers'
	// subscriptions to it are replaced too, so a plain plan has nothing left to do.
	r = l.rebuild(ctx, "yaounde", RebuildOptions{Force: true})
	if r.Generation != 1 {
		t.Errorf("forced rebuild of yaounde: generation %d, want 1", r.Generation)
	}
	l.checkRebuilt(ctx, 1404)
}

// stepIndex is the index of the rebuild's first step whose name starts with
// prefix (-1: none).
func stepIndex(r *Rebuild, prefix string) int {
	for i, st := range r.Steps {
		if strings.HasPrefix(st.Name, prefix) {
			return i
		}
	}
	return -1
}

// setSubscriptions enables or disables every subscription of a database and, on
// disabling, waits for their workers to stop.
func (l *lab) setSubscriptions(pool *pgxpool.Pool, enable bool) {
	l.t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT subname FROM pg_subscription`)
	if err != nil {
		l.t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		l.t.Fatal(err)
	}
	verb := " DISABLE"
	if enable {
		verb = " ENABLE"
	}
	for _, n := range names {
		if _, err := pool.Exec(ctx, "ALTER SUBSCRIPTION "+quoteIdent(n)+verb); err != nil {
			l.t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); !enable && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var running int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL`).Scan(&running); err != nil || running == 0 {
			return
		}
	}
}

// connectTo connects to a cluster as the site's database (an old instance).
func (l *lab) connectTo(site string, c *pgtest.Cluster) *pgxpool.Pool {
	l.t.Helper()
	s := *l.topo.Site(site)
	s.Postgres.Port = c.Port
	pool, err := Connect(context.Background(), &s)
	if err != nil {
		l.t.Fatal(err)
	}
	return pool
}

// countOn runs a count query on a cluster reached as douala.
func (l *lab) countOn(c *pgtest.Cluster, sql string) int64 {
	l.t.Helper()
	pool := l.connectTo("douala", c)
	defer pool.Close()
	var n int64
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		l.t.Fatal(err)
	}
	return n
}

// lose cuts a site's cluster off (its replication links and subscriptions), writes
// five rows there that never leave it, and puts a new empty cluster in its place.
// It returns the old cluster, still running.
func (l *lab) lose(site string) *pgtest.Cluster {
	l.t.Helper()
	old := l.clusters[site]
	l.proxies[site].Cut()
	proxyMu.Lock()
	proxyByPort[old.Port] = l.proxies[site]
	proxyMu.Unlock()
	l.setSubscriptions(l.pool(site), false)
	l.insertOrders(site, 5)
	settings := ServerSettings(l.topo, l.topo.Site(site))
	settings["checkpoint_timeout"] = "1h"
	c, err := pgtest.StartCluster(pgtest.Options{Name: "pg" + site + "-new", Password: testPassword, Settings: settings})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { _ = old.Stop() })
	l.pointAt(site, c)
	return old
}

// pointAt makes c the site's cluster: the config, and its replication proxy
// (made once per cluster and kept, so pointing back and forth cuts no flow).
func (l *lab) pointAt(site string, c *pgtest.Cluster) {
	l.t.Helper()
	proxyMu.Lock()
	defer proxyMu.Unlock()
	p := proxyByPort[c.Port]
	if p == nil {
		var err error
		p, err = pgtest.NewProxy(net.JoinHostPort("127.0.0.2", strconv.Itoa(c.Port)), net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
		if err != nil {
			l.t.Fatal(err)
		}
		proxyByPort[c.Port] = p
		l.t.Cleanup(func() { _ = p.Close() })
	}
	l.proxies[site] = p
	l.clusters[site] = c
	l.load()
}

// proxyByPort holds the proxies pointAt made, by cluster port.
var (
	proxyMu     sync.Mutex
	proxyByPort = map[int]*pgtest.Proxy{}
)

func (l *lab) planRebuild(ctx context.Context, site string, opts RebuildOptions) *Rebuild {
	l.t.Helper()
	if opts.Wait == 0 {
		opts.Wait = time.Minute
	}
	r, err := PlanRebuild(ctx, l.topo, l.sess, site, opts)
	if err != nil {
		l.t.Fatalf("plan the rebuild of %s: %v", site, err)
	}
	return r
}

// rebuild plans and runs a site's rebuild, logging the plan and the progress.
func (l *lab) rebuild(ctx context.Context, site string, opts RebuildOptions) *Rebuild {
	l.t.Helper()
	opts.Progress = func(key, text string) { l.t.Logf("  %s %s", key, text) }
	r := l.planRebuild(ctx, site, opts)
	var b strings.Builder
	if err := r.Plan("test").Render(&b); err != nil {
		l.t.Fatal(err)
	}
	l.t.Logf("rebuild plan of %s:\n%s", site, b.String())
	began := time.Now()
	if err := r.Run(ctx, nil); err != nil {
		l.t.Fatalf("rebuild %s: %v\n%s\n%s", site, err, l.statusText(), l.clusterLogs())
	}
	l.t.Logf("rebuilt %s in %s: %d rows copied (initial copies included)", site, time.Since(began).Round(time.Millisecond), r.Rows())
	return r
}

// checkRebuilt checks a rebuilt lab: every site holds want orders, equal per
// owner; a plain plan has nothing to do; new writes replicate both ways.
func (l *lab) checkRebuilt(ctx context.Context, want int64) {
	l.t.Helper()
	l.waitConverged("public.orders", want, time.Minute)
	v, err := Verify(ctx, l.topo, l.sess, 30*time.Second)
	if err != nil {
		l.t.Fatalf("verify: %v", err)
	}
	if len(v) != 9 { // three tables × three owners
		l.t.Errorf("verify compared %d (table, owner) pairs, want 9", len(v))
	}
	if p := l.plan(ctx); p.Err() != nil || p.Count() != 0 {
		l.t.Fatalf("plan after the rebuild: %v, steps %v", p.Err(), stepNames(p))
	}
	for i, s := range l.topo.SiteNames() {
		l.insertOrders(s, 10*(i+1))
	}
	l.waitConverged("public.orders", want+60, time.Minute)
	l.waitStreaming(30 * time.Second)
	for _, s := range l.topo.SiteNames() {
		if n := l.queryInt(s, fmt.Sprintf("SELECT count(*) FROM %s WHERE state <> 'active'", GenerationTable)); n != 0 {
			l.t.Errorf("%s: %d generations not active after the rebuild", s, n)
		}
	}
}

func (l *lab) pool(site string) *pgxpool.Pool {
	l.t.Helper()
	p, err := l.sess.Pool(context.Background(), site)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}
