package pgdrill

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
)

// fixture is three real PostgreSQL 15 clusters (cloud hub, douala and yaounde spokes)
// replicating the drill table hub-and-spoke as sitectl configures it (row filters on
// the owner column, disable_on_error), each subscription reaching its publisher
// through a TCP proxy per flow. Cutting a link drops and refuses its flows' TCP
// connections, the way a lost tunnel does.
type fixture struct {
	topo     *sites.Topology
	clusters map[string]*pgtest.Cluster
	pools    map[string]*pgxpool.Pool
	proxies  map[string][]*pgtest.Proxy // link name → the proxies of its flows
	flows    []Flow
}

const fixturePassword = "dr-test-password"

var (
	sharedMu  sync.Mutex
	shared    *fixture
	sharedErr error
)

// TestMain stops the shared clusters after the package's tests.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	sharedMu.Lock()
	if shared != nil {
		shared.close()
	}
	sharedMu.Unlock()
	os.Exit(code)
}

// newFixture returns the package's shared fixture (started on first use), reset to a
// healthy state: every link healed, every subscription enabled and streaming.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("real PostgreSQL clusters: skipped under -short")
	}
	if why := pgtest.Available(); why != "" {
		t.Skip("real PostgreSQL: " + why)
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		t0 := time.Now()
		shared, sharedErr = startFixture()
		t.Logf("fixture: 3 clusters replicating in %s", time.Since(t0).Round(time.Millisecond))
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	shared.reset(t)
	return shared
}

func startFixture() (*fixture, error) {
	site := func(name, role string) *sites.Site {
		return &sites.Site{Name: name, Role: role, Stacks: []string{"postgres"}}
	}
	topo := &sites.Topology{Env: "test", Hub: "cloud",
		Sites: []*sites.Site{site("cloud", sites.RoleHub), site("douala", sites.RoleSpoke), site("yaounde", sites.RoleSpoke)},
		Links: []sites.Link{{A: "douala", B: "cloud"}, {A: "yaounde", B: "cloud"}},
		Flows: []sites.Flow{
			{From: "douala", To: "cloud", Filter: "site = 'douala'"},
			{From: "cloud", To: "douala", Filter: "site <> 'douala'"},
			{From: "yaounde", To: "cloud", Filter: "site = 'yaounde'"},
			{From: "cloud", To: "yaounde", Filter: "site <> 'yaounde'"},
		}}
	f := &fixture{topo: topo, clusters: map[string]*pgtest.Cluster{}, pools: map[string]*pgxpool.Pool{},
		proxies: map[string][]*pgtest.Proxy{}, flows: TopologyFlows(topo)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, s := range topo.Sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgtest.StartCluster(pgtest.Options{Name: "dr-" + s.Name, Password: fixturePassword, Settings: map[string]string{
				"wal_level": "logical", "max_wal_senders": "10", "max_replication_slots": "10",
				"max_logical_replication_workers": "6", "max_worker_processes": "12",
				"wal_retrieve_retry_interval": "500ms", "wal_sender_timeout": "10s", "wal_receiver_timeout": "10s",
			}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			f.clusters[s.Name] = c
		}()
	}
	wg.Wait()
	fail := func(err error) (*fixture, error) { f.close(); return nil, err }
	if len(errs) > 0 {
		return fail(errs[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for name, c := range f.clusters {
		pool, err := pgxpool.New(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=%s", c.Dir, c.Port, c.Opts.Database))
		if err != nil {
			return fail(err)
		}
		f.pools[name] = pool
		if _, err := pool.Exec(ctx, drill.TableDDL); err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
	}
	for i, fl := range f.flows {
		if _, err := f.pools[fl.From].Exec(ctx, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WHERE (%s) WITH (publish = 'insert, update, delete')",
			fl.Publication, drill.Table, topo.Flows[i].Filter)); err != nil {
			return fail(fmt.Errorf("publication at %s: %w", fl.From, err))
		}
	}
	for _, fl := range f.flows {
		pub := f.clusters[fl.From]
		px, err := pgtest.NewProxy("127.0.0.1:0", net.JoinHostPort(pub.Host, strconv.Itoa(pub.Port)))
		if err != nil {
			return fail(err)
		}
		link, err := topo.Link(fl.From + "-" + fl.To)
		if err != nil {
			return fail(err)
		}
		f.proxies[link.Name()] = append(f.proxies[link.Name()], px)
		host, port, _ := net.SplitHostPort(px.Addr)
		conn := fmt.Sprintf("host=%s port=%s user=sitectl password=%s dbname=%s", host, port, fixturePassword, pub.Opts.Database)
		if _, err := f.pools[fl.To].Exec(ctx, fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION '%s' PUBLICATION %s WITH (disable_on_error = true)",
			fl.Subscription, conn, fl.Publication)); err != nil {
			return fail(fmt.Errorf("subscription at %s: %w", fl.To, err))
		}
	}
	return f, nil
}

// close stops the proxies (dropping replication connections, so no walsender waits
// for a peer at shutdown), the pools and the clusters.
func (f *fixture) close() {
	for _, ps := range f.proxies {
		for _, p := range ps {
			_ = p.Close()
		}
	}
	for _, p := range f.pools {
		p.Close()
	}
	var wg sync.WaitGroup
	for _, c := range f.clusters {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Stop() }()
	}
	wg.Wait()
}

// reset heals every link and enables every subscription, then waits for streaming.
func (f *fixture) reset(t *testing.T) {
	t.Helper()
	for _, ps := range f.proxies {
		for _, p := range ps {
			p.Heal()
		}
	}
	if _, err := (enableAll{f}).Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.waitStreaming(t)
}

func (f *fixture) observer() *Observer { return &Observer{Specs: f.flows, Pool: Pools(f.pools)} }

func (f *fixture) stores() map[string]drill.Store {
	out := map[string]drill.Store{}
	for name, p := range f.pools {
		out[name] = &Store{Site: name, Pool: p}
	}
	return out
}

func (f *fixture) waitStreaming(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []drill.FlowState
	for time.Now().Before(deadline) {
		flows, err := f.observer().Flows(context.Background())
		if err == nil {
			ok := len(flows) == 4
			for _, fl := range flows {
				ok = ok && fl.State == drill.StateStreaming
			}
			if ok {
				return
			}
			last = flows
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("replication did not start streaming: %+v", last)
}

// proxyCutter cuts a link by cutting the TCP proxies its flows go through.
type proxyCutter struct {
	f     *fixture
	mu    sync.Mutex
	cuts  map[string]int
	heals map[string]int
}

func newProxyCutter(f *fixture) *proxyCutter {
	return &proxyCutter{f: f, cuts: map[string]int{}, heals: map[string]int{}}
}

func (c *proxyCutter) Cut(_ context.Context, l sites.Link) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cuts[l.Name()]++
	for _, p := range c.f.proxies[l.Name()] {
		p.Cut()
	}
	return nil
}

func (c *proxyCutter) Heal(_ context.Context, l sites.Link) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heals[l.Name()]++
	for _, p := range c.f.proxies[l.Name()] {
		p.Heal()
	}
	return nil
}

// crossable reports whether a new database connection gets through every proxy of
// the link (the link carries traffic).
func (f *fixture) crossable(t *testing.T, link string) bool {
	t.Helper()
	for _, p := range f.proxies[link] {
		host, port, _ := net.SplitHostPort(p.Addr)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=sitectl password=%s dbname=app", host, port, fixturePassword))
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err != nil {
			return false
		}
	}
	return true
}

// enableAll re-enables every disabled subscription of the fixture. Test fixtures only:
// it does not look for a pending conflict first (sitectl's replication reconcile does;
// drills against real sites use it through ReconcileResyncer). In these tests every
// site writes only its own keys, so there is none.
type enableAll struct{ f *fixture }

func (e enableAll) Resync(ctx context.Context) (string, error) {
	var enabled []string
	for _, fl := range e.f.flows {
		tag, err := e.f.pools[fl.To].Exec(ctx, `SELECT 1 FROM pg_subscription WHERE subname = $1 AND NOT subenabled`, fl.Subscription)
		if err != nil {
			return "", err
		}
		if tag.RowsAffected() == 0 {
			continue
		}
		if _, err := e.f.pools[fl.To].Exec(ctx, "ALTER SUBSCRIPTION "+fl.Subscription+" ENABLE"); err != nil {
			return "", err
		}
		enabled = append(enabled, fl.Subscription)
	}
	return fmt.Sprintf("enabled %d subscription(s) %v", len(enabled), enabled), nil
}
