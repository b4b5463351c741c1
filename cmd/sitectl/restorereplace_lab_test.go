package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/backup/backuptest"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
)

// replaceLab is TestLabBackupCLI's douala (backuptest, backed up by Barman)
// replicating with cloud and yaounde (pgtest clusters), for restore --replace.
type replaceLab struct {
	t    *testing.T
	dir  string
	set  []string
	topo *sites.Topology
	sess *postgres.Session
}

// logicalSettings are douala's server settings for replication, from the example
// topology (backuptest.StartWith), so it can replicate later in the test.
func logicalSettings(t *testing.T, dir string) map[string]string {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: dir, Environ: []string{"SITECTL_PG_PASSWORD=x"}})
	if err != nil {
		t.Fatal(err)
	}
	return postgres.ServerSettings(topo, topo.Site("douala"))
}

// startReplaceLab starts cloud and yaounde, points the topology at the three
// servers, writes each server's passfile and deploys PostgreSQL replication.
func startReplaceLab(t *testing.T, s *backuptest.Site, dir string) *replaceLab {
	t.Helper()
	l := &replaceLab{t: t, dir: dir}
	settingsTopo, err := sites.Load(sites.Options{Dir: dir, Environ: []string{"SITECTL_PG_PASSWORD=x"}})
	if err != nil {
		t.Fatal(err)
	}
	clusters := map[string]*pgtest.Cluster{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range []string{"cloud", "yaounde"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgtest.StartCluster(pgtest.Options{Name: "pg" + name, Password: s.Password, Settings: postgres.ServerSettings(settingsTopo, settingsTopo.Site(name))})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { _ = c.Stop() })
			mu.Lock()
			clusters[name] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	passfiles := map[string]string{"douala": filepath.Join(s.Dir, "pgpass")}
	ports := map[string]int{"douala": s.Port}
	for name, c := range clusters {
		passfiles[name], ports[name] = filepath.Join(c.Dir, "pgpass"), c.Port
	}
	l.set = []string{"postgres.sslmode=disable", "douala:backup.server=cloud"}
	for name, port := range ports {
		l.set = append(l.set, name+":postgres.host=127.0.0.1", name+":postgres.replication_host=127.0.0.1",
			fmt.Sprintf("%s:postgres.port=%d", name, port), name+":postgres.passfile="+passfiles[name])
	}
	if l.topo, err = sites.Load(sites.Options{Dir: dir, Set: l.set}); err != nil {
		t.Fatal(err)
	}
	for name, path := range passfiles {
		lines, err := postgres.PassLines(l.topo, l.topo.Site(name))
		if err != nil {
			t.Fatal(err)
		}
		content, err := postgres.PassFile(lines)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("chown", "postgres:", path).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v %s", path, err, out)
		}
	}
	l.sess = postgres.NewSession(l.topo)
	t.Cleanup(l.sess.Close)
	ctx := context.Background()
	p, err := postgres.Plan(ctx, l.topo, l.sess, postgres.Options{Wait: 30 * time.Second})
	if err == nil {
		err = p.Err()
	}
	if err != nil {
		t.Fatalf("plan PostgreSQL replication: %v", err)
	}
	// Every site's changes phase by phase across the sites, as deploy's parts do.
	var all []postgres.Change
	for _, site := range slices.Sorted(maps.Keys(p.Changes)) {
		all = append(all, p.Changes[site]...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Op.Phase < all[j].Op.Phase })
	for _, c := range all {
		if c.Step.Apply != nil {
			if err := c.Step.Apply(ctx); err != nil {
				t.Fatalf("deploy PostgreSQL replication: %s: %s: %v", c.Step.Site, c.Step, err)
			}
		}
	}
	return l
}

func (l *replaceLab) pool(site string) *pgxpool.Pool {
	l.t.Helper()
	p, err := l.sess.Pool(context.Background(), site)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func (l *replaceLab) exec(site, sql string, args ...any) {
	l.t.Helper()
	if _, err := l.pool(site).Exec(context.Background(), sql, args...); err != nil {
		l.t.Fatalf("%s: %s: %v", site, sql, err)
	}
}

func (l *replaceLab) count(site, owner string) int {
	l.t.Helper()
	var n int
	if err := l.pool(site).QueryRow(context.Background(), "SELECT count(*) FROM public.orders WHERE site = $1", owner).Scan(&n); err != nil {
		l.t.Fatalf("%s: count %s's orders: %v", site, owner, err)
	}
	return n
}

// insert writes n orders of site at site, amount marking them.
func (l *replaceLab) insert(site string, n int, amount int) {
	l.exec(site, "INSERT INTO public.orders (id, site, amount) SELECT gen_random_uuid(), $1, $2 FROM generate_series(1, $3)", site, amount, n)
}

// waitCount waits until every site in at holds want orders of owner.
func (l *replaceLab) waitCount(owner string, want int, at ...string) {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, site := range at {
		for got := l.count(site, owner); got != want; got = l.count(site, owner) {
			if time.Now().After(deadline) {
				l.t.Fatalf("%s holds %d orders of %s, want %d", site, got, owner, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// testRestoreReplace: a mistaken DELETE at douala, replicated everywhere, is undone
// by restore --replace --time <before it>: refused without a confirmation (nothing
// changed), then with --i-understand-data-loss douala's deleted rows are back at
// every site, its rows written after the point that reached the hub are kept, the
// rows that never left douala are lost as the plan said, and replication runs on.
func testRestoreReplace(t *testing.T, s *backuptest.Site, dir string) {
	partBegan := time.Now()
	defer func() {
		t.Logf("FIGURE the restore --replace part of the test: %s", time.Since(partBegan).Round(time.Millisecond))
	}()
	l := startReplaceLab(t, s, dir)
	all := []string{"douala", "cloud", "yaounde"}
	l.insert("douala", 300, 1)
	l.insert("cloud", 100, 1)
	l.insert("yaounde", 100, 1)
	l.waitCount("douala", 300, all...)
	l.waitCount("cloud", 100, all...)
	var point time.Time
	if err := l.pool("douala").QueryRow(context.Background(), "SELECT clock_timestamp()").Scan(&point); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	l.insert("douala", 50, 2)
	l.exec("douala", "DELETE FROM public.orders WHERE site = 'douala' AND amount = 1")
	l.waitCount("douala", 50, all...)
	// Seven rows that never leave douala: the hub's subscription is stopped.
	l.exec("cloud", "ALTER SUBSCRIPTION sitectl_douala_to_cloud DISABLE")
	l.insert("douala", 7, 3)

	args := append([]string{"--config-dir", dir, "restore", "--site", "douala", "--time", point.UTC().Format(time.RFC3339Nano),
		"--replace", "--dir", s.RestoreDir, "--port", strconv.Itoa(backuptest.FreePort(t))}, setArgs(l.set)...)
	env := []string{"SITECTL_BARMAN_CONFIG=" + s.BarmanConfig}
	out, errOut, err := run(t, env, args...)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "--i-understand-data-loss") {
		t.Fatalf("restore --replace without a confirmation: want exit 1 naming --i-understand-data-loss, got %v\n%s%s", err, out, errOut)
	}
	if got := l.count("douala", "douala"); got != 57 {
		t.Fatalf("a refused replace changed douala: %d orders of douala, want 57", got)
	}

	began := time.Now()
	out, errOut, err = run(t, env, append(args, "--i-understand-data-loss")...)
	if err != nil {
		t.Fatalf("restore --replace --i-understand-data-loss: %v\n%s%s", err, out, errOut)
	}
	t.Logf("FIGURE restore --replace (restore into scratch, plan, rebuild with the restored rows, verify): %s\n%s", time.Since(began).Round(time.Millisecond), out)
	if !strings.Contains(out, "public.orders: 7 of 57") {
		t.Errorf("the plan does not name the 7 rows lost (public.orders: 7 of 57):\n%s", out)
	}
	for _, site := range all {
		if d, c, y := l.count(site, "douala"), l.count(site, "cloud"), l.count(site, "yaounde"); d != 350 || c != 100 || y != 100 {
			t.Errorf("%s after the replace: orders of douala %d (want 300 restored + 50 from the hub), cloud %d, yaounde %d (want 100 each)", site, d, c, y)
		}
	}
	var lost int
	if err := l.pool("douala").QueryRow(context.Background(), "SELECT count(*) FROM public.orders WHERE amount = 3").Scan(&lost); err != nil || lost != 0 {
		t.Errorf("the rows that never left douala: %d there (%v), want 0 (lost, as the plan said)", lost, err)
	}
	if entries, _ := os.ReadDir(s.RestoreDir); len(entries) != 0 {
		t.Errorf("scratch left after restore --replace: %v", entries)
	}
	// Replication runs on both ways.
	l.insert("douala", 5, 4)
	l.insert("cloud", 5, 4)
	l.waitCount("douala", 355, all...)
	l.waitCount("cloud", 105, all...)
}

func setArgs(set []string) []string {
	out := make([]string, 0, 2*len(set))
	for _, s := range set {
		out = append(out, "--set", s)
	}
	return out
}
