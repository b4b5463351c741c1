package postgres

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/lab/labgate"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
)

// testPassword has a quote and a backslash to prove connection strings are escaped.
const testPassword = `s3cret-'pw\x`

// lab is three real PostgreSQL 15 clusters (douala, yaounde, cloud), each behind a
// cuttable proxy that the subscriptions use as the site's replication_host, and the
// topology of a temp copy of the repo's sites/ pointing at them.
type lab struct {
	t        testing.TB
	dir      string
	clusters map[string]*pgtest.Cluster
	proxies  map[string]*pgtest.Proxy
	topo     *sites.Topology
	sess     *Session
	extraSet []string
	fixedSet []string
}

func skipUnlessLab(t testing.TB) {
	t.Helper()
	labgate.Skip(t)
	if why := pgtest.Available(); why != "" {
		t.Skip("lab test: " + why)
	}
}

// startLab starts the clusters; set are extra --set overrides (they size the
// server settings too).
func startLab(t testing.TB, set ...string) *lab {
	skipUnlessLab(t)
	t.Setenv("SITECTL_PG_PASSWORD", testPassword)
	t.Setenv("SITECTL_PG_APP_PASSWORD", testPassword+"-app")
	l := &lab{t: t, dir: t.TempDir(), clusters: map[string]*pgtest.Cluster{}, proxies: map[string]*pgtest.Proxy{}, fixedSet: set}
	copyDir(t, filepath.Join("..", "..", "sites"), l.dir)
	began := time.Now()
	// A first load only to size the server settings from the flows.
	l.load()
	settings := map[string]map[string]string{}
	for _, s := range l.topo.Sites {
		settings[s.Name] = ServerSettings(l.topo, s)
		// Log every DDL statement: the test then proves the password never reaches
		// the server log.
		settings[s.Name]["log_statement"] = "ddl"
		// No timed checkpoint in a test: it would drop a slot past a small
		// max_slot_wal_keep_size at a random moment.
		settings[s.Name]["checkpoint_timeout"] = "1h"
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, name := range l.topo.SiteNames() {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			c, err := pgtest.StartCluster(pgtest.Options{Name: "pg" + name, Password: testPassword, Settings: settings[name]})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			l.clusters[name] = c
			mu.Unlock()
		}(name)
	}
	wg.Wait()
	t.Logf("clusters started in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if l.sess != nil {
			l.sess.Close()
		}
		for _, p := range l.proxies {
			_ = p.Close()
		}
		stopAt := time.Now()
		var wg sync.WaitGroup
		for _, c := range l.clusters {
			wg.Add(1)
			go func(c *pgtest.Cluster) { defer wg.Done(); _ = c.Stop() }(c)
		}
		wg.Wait()
		t.Logf("clusters stopped in %s", time.Since(stopAt).Round(time.Millisecond))
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for name, c := range l.clusters {
		p, err := pgtest.NewProxy(net.JoinHostPort("127.0.0.2", strconv.Itoa(c.Port)), net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
		if err != nil {
			t.Fatal(err)
		}
		l.proxies[name] = p
	}
	l.load()
	return l
}

// load (re)loads the topology from the temp config dir, pointing at the clusters.
func (l *lab) load() {
	l.t.Helper()
	topo, err := sites.Load(sites.Options{Dir: l.dir, Environ: []string{"SITECTL_PG_PASSWORD=" + testPassword}, Set: l.setFlags()})
	if err != nil {
		l.t.Fatalf("load topology: %v", err)
	}
	l.topo = topo
	if l.sess != nil {
		l.sess.Close()
	}
	l.sess = NewSession(topo)
	// Each running cluster's passfile (postgres.passfile, setFlags), as the
	// postgres stack's pgpass secret holds it in a container.
	for name, c := range l.clusters {
		lines, err := PassLines(topo, topo.Site(name))
		if err != nil {
			l.t.Fatal(err)
		}
		content, err := PassFile(lines)
		if err != nil {
			l.t.Fatal(err)
		}
		writeOwnedByPostgres(l.t, filepath.Join(c.Dir, "pgpass"), content)
	}
}

// setFlags are the --set overrides that point the sites at the clusters.
func (l *lab) setFlags() []string {
	set := []string{"postgres.sslmode=disable"}
	for _, name := range []string{"cloud", "douala", "yaounde"} {
		port := 1 // nothing listens there: an unreachable site
		if c := l.clusters[name]; c != nil {
			port = c.Port
		}
		set = append(set, name+":postgres.host=127.0.0.1", fmt.Sprintf("%s:postgres.port=%d", name, port),
			name+":postgres.replication_host=127.0.0.2")
		if c := l.clusters[name]; c != nil {
			set = append(set, name+":postgres.passfile="+filepath.Join(c.Dir, "pgpass"))
		}
	}
	set = append(set, l.fixedSet...)
	return append(set, l.extraSet...)
}

// edit rewrites a file of the temp config dir.
func (l *lab) edit(name string, fn func(string) string) {
	l.t.Helper()
	path := filepath.Join(l.dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		l.t.Fatal(err)
	}
	out := fn(string(b))
	if out == string(b) {
		l.t.Fatalf("edit %s changed nothing", name)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

var tablesRE = regexp.MustCompile(`(?m)^(\s+tables: \[[^\]]*)\]`)

// addTable adds a table to the replicated list in the temp defaults.yaml.
func (l *lab) addTable(name string) {
	l.edit("defaults.yaml", func(s string) string { return tablesRE.ReplaceAllString(s, "${1}, "+name+"]") })
}

func (l *lab) read(name string) string {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.dir, name))
	if err != nil {
		l.t.Fatal(err)
	}
	return string(b)
}

func (l *lab) write(name, content string) {
	l.t.Helper()
	if err := os.WriteFile(filepath.Join(l.dir, name), []byte(content), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) plan(ctx context.Context) *Planned {
	l.t.Helper()
	p, err := Plan(ctx, l.topo, l.sess, Options{Wait: 30 * time.Second})
	if err != nil {
		l.t.Fatalf("plan: %v", err)
	}
	return p
}

func (l *lab) exec(site, sql string, args ...any) {
	l.t.Helper()
	pool, err := l.sess.Pool(context.Background(), site)
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		l.t.Fatalf("%s: %s: %v", site, sql, err)
	}
}

// openTx begins a transaction at site, runs sql in it and leaves it open.
func (l *lab) openTx(site, sql string) pgx.Tx {
	l.t.Helper()
	pool, err := l.sess.Pool(context.Background(), site)
	if err != nil {
		l.t.Fatal(err)
	}
	tx, err := pool.Begin(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), sql); err != nil {
		_ = tx.Rollback(context.Background())
		l.t.Fatalf("%s: %s: %v", site, sql, err)
	}
	return tx
}

func (l *lab) queryInt(site, sql string, args ...any) int64 {
	l.t.Helper()
	pool, err := l.sess.Pool(context.Background(), site)
	if err != nil {
		l.t.Fatal(err)
	}
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		l.t.Fatalf("%s: %s: %v", site, sql, err)
	}
	return n
}

// insertOrders writes n rows owned by site, in batches of 100 rows per transaction.
func (l *lab) insertOrders(site string, n int) {
	l.t.Helper()
	for done := 0; done < n; done += 100 {
		k := min(100, n-done)
		ids := make([]string, k)
		for i := range ids {
			ids[i] = uuid.Must(uuid.NewV7()).String()
		}
		l.exec(site, `INSERT INTO public.orders (id, site, amount) SELECT unnest($1::uuid[]), $2, 1`, ids, site)
	}
}

// fingerprint is a table's content summary at a site: rows, distinct ids, and a
// sum of hashes of every (id, site[, amount]); cheap enough to poll.
func (l *lab) fingerprint(site, table string) string {
	l.t.Helper()
	pool, err := l.sess.Pool(context.Background(), site)
	if err != nil {
		l.t.Fatal(err)
	}
	var n, distinct int64
	var sum string
	extra := ""
	if table == "public.orders" {
		extra = " || amount::text"
	}
	err = pool.QueryRow(context.Background(), fmt.Sprintf(`SELECT count(*), count(DISTINCT id),
		coalesce(sum(hashtext(id::text || site%s)), 0)::text FROM %s`, extra, table)).Scan(&n, &distinct, &sum)
	if err != nil {
		l.t.Fatal(err)
	}
	if n != distinct {
		l.t.Errorf("%s %s: count(*) = %d but count(DISTINCT id) = %d", site, table, n, distinct)
	}
	return fmt.Sprintf("%d rows %s", n, sum)
}

// waitConverged waits until every site holds the same rows of table with want rows
// (want < 0: any count) and returns how long that took.
func (l *lab) waitConverged(table string, want int64, timeout time.Duration) time.Duration {
	l.t.Helper()
	start := time.Now()
	var last []string
	for time.Since(start) < timeout {
		last = last[:0]
		same := true
		for _, s := range l.topo.SiteNames() {
			fp := l.fingerprint(s, table)
			last = append(last, s+": "+fp)
			if !strings.HasPrefix(fp, fmt.Sprintf("%d rows", want)) && want >= 0 {
				same = false
			}
			if len(last) > 1 && strings.SplitN(last[0], ": ", 2)[1] != fp {
				same = false
			}
		}
		if same {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("%s did not converge to %d rows in %s: %s\n%s", table, want, timeout, strings.Join(last, "; "), l.statusText())
	return 0
}

func (l *lab) status() *Report {
	l.t.Helper()
	r, err := Status(context.Background(), l.topo, l.sess)
	if err != nil {
		l.t.Fatal(err)
	}
	return r
}

func (l *lab) statusText() string {
	var b strings.Builder
	_ = l.status().Render(&b)
	return b.String()
}

// waitStreaming waits until every flow streams.
func (l *lab) waitStreaming(timeout time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r := l.status()
		ok := true
		for _, f := range r.Flows {
			if f.State != StateStreaming {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	l.t.Fatalf("flows not streaming after %s:\n%s", timeout, l.statusText())
}

func (l *lab) flow(r *Report, from, to string) FlowStatus {
	l.t.Helper()
	for _, f := range r.Flows {
		if f.From == from && f.To == to {
			return f
		}
	}
	l.t.Fatalf("no flow %s → %s in status", from, to)
	return FlowStatus{}
}

// cutSite cuts every replication link of a spoke: the spoke's proxy (its publisher
// side) and, on the hub's proxy, the spoke's subscription only.
func (l *lab) cutSite(spoke string) { //nolint:unparam // any spoke; the tests cut douala today
	l.proxies[spoke].Cut()
	l.proxies[l.topo.Hub].CutApps(Flow{From: l.topo.Hub, To: spoke}.Name())
}

func (l *lab) heal() {
	for _, p := range l.proxies {
		p.Heal()
	}
}

// reconcile plans and applies, failing the test on any error, and returns the
// number of changes applied.
func (l *lab) reconcile(ctx context.Context) int {
	l.t.Helper()
	p := l.plan(ctx)
	if err := p.Err(); err != nil {
		l.t.Fatalf("plan: %v", err)
	}
	if err := p.Apply(ctx, nil); err != nil {
		l.t.Fatalf("apply: %v\n%s", err, l.clusterLogs())
	}
	return p.Count()
}

func (l *lab) clusterLogs() string {
	var b strings.Builder
	for n, c := range l.clusters {
		fmt.Fprintf(&b, "--- %s server log\n%s\n", n, c.Log())
	}
	return b.String()
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(path, ".go") || rel == sites.CurrentEnvFile {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
