package live

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/pgdrill"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
	"github.com/sitectl/sitectl/tunnels/tunneltest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// drLab is the shared lab with its tunnels up and a real PostgreSQL 15 cluster in
// each site's gateway namespace, listening on the gateway's LAN address, replicating
// hub-and-spoke through the IPsec tunnels as sitectl's replication reconcile set it
// up. (The postgres stack runs PostgreSQL as a swarm service; these drill tests run
// it as a process in the site's namespace so they do not depend on the deploy path.)
type drLab struct {
	lab  *labtest.Lab
	topo *sites.Topology
	set  []string // the --set flags that point the config at the clusters
	dbs  map[string]*pgtest.Cluster
}

const drPort = 55432

// startDRLab brings the shared lab's tunnels up and starts fresh clusters for this
// test (stopped when it ends).
func startDRLab(t *testing.T) *drLab {
	t.Helper()
	l := labtest.Shared(t)
	t0 := time.Now()
	d, err := buildDRLab(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	d.waitStreaming(t)
	t.Logf("lab: tunnels up, 3 PostgreSQL clusters replicating through them in %s", time.Since(t0).Round(time.Millisecond))
	return d
}

func buildDRLab(l *labtest.Lab) (*drLab, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := &drLab{lab: l, dbs: map[string]*pgtest.Cluster{}}
	// Tunnels: certificates, transit addresses on the hub (kernel-libipsec), load,
	// then (re)initiate every link.
	gws, err := tunnels.Build(l.Topo)
	if err != nil {
		return nil, err
	}
	for _, g := range gws {
		s := l.Topo.Site(g.Site)
		ca, gw := tunnels.SiteCerts(l.Topo, s)
		if _, _, err := tunnels.Ensure(ca, gw, s.Gateway.ID, s.Tunnel.KeyType, s.Tunnel.CertLifetime.D()); err != nil {
			return nil, fmt.Errorf("certs %s: %w", s.Name, err)
		}
		if err := tunnels.SetupTransit(ctx, s.Reach, g); err != nil {
			return nil, err
		}
	}
	for _, g := range gws {
		if err := tunneltest.Install(ctx, l.Topo, g); err != nil {
			return nil, fmt.Errorf("install tunnels %s: %w", g.Site, err)
		}
	}
	for _, link := range l.Topo.Links {
		if err := tunnels.WaitUp(ctx, l.Topo, link.Name(), 5*time.Second); err != nil {
			// A CHILD_SA refused before the transit addresses existed stays down:
			// cut and heal it once.
			if err := tunnels.Cut(ctx, l.Topo, link.Name()); err != nil {
				return nil, err
			}
			if err := tunnels.Heal(ctx, l.Topo, link.Name()); err != nil {
				return nil, err
			}
		}
	}
	// Databases.
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, s := range l.Topo.Sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := startSiteDB(ctx, l.Topo, s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			d.dbs[s.Name] = db
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		d.close()
		return nil, errs[0]
	}
	d.set = []string{"postgres.sslmode=disable", "postgres.port=" + strconv.Itoa(drPort)}
	for _, s := range l.Topo.Sites {
		// The server reads its subscriptions' passwords from a passfile on the
		// host, as the postgres stack's pgpass secret in a container.
		d.set = append(d.set, s.Name+":postgres.host="+s.Gateway.LANAddress, s.Name+":postgres.passfile="+filepath.Join(d.dbs[s.Name].Dir, "pgpass"))
	}
	d.topo, err = sites.Load(sites.Options{Dir: l.ConfigDir, Env: l.Topo.Env, Environ: []string{}, Set: d.set})
	if err != nil {
		d.close()
		return nil, err
	}
	if err := writePassFiles(d); err != nil {
		d.close()
		return nil, err
	}
	labreach.Install(d.topo)
	sess := postgres.NewSession(d.topo)
	defer sess.Close()
	p, err := postgres.Plan(ctx, d.topo, sess, postgres.Options{Wait: time.Minute})
	if err == nil {
		err = p.Err()
	}
	if err == nil {
		err = applyReplication(ctx, p)
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("replication reconcile: %w", err)
	}
	return d, nil
}

// applyReplication applies every site's replication changes phase by phase across
// the sites (the schema everywhere, then publications, subscriptions, removals);
// the first error stops it.
func applyReplication(ctx context.Context, p *postgres.Planned) error {
	var all []postgres.Change
	for _, site := range slices.Sorted(maps.Keys(p.Changes)) {
		all = append(all, p.Changes[site]...)
	}
	slices.SortStableFunc(all, func(a, b postgres.Change) int { return cmp.Compare(a.Op.Phase, b.Op.Phase) })
	steps := make([]plan.Step, 0, len(all))
	for _, c := range all {
		steps = append(steps, c.Step)
	}
	_, err := plan.Apply(ctx, steps, nil)
	return err
}

func (d *drLab) close() {
	for _, db := range d.dbs {
		_ = db.Stop()
	}
}

// startSiteDB starts a real PostgreSQL 15 in the site's gateway namespace, on its LAN
// address, with the server settings replication needs and the site's login role.
func startSiteDB(_ context.Context, topo *sites.Topology, s *sites.Site) (*pgtest.Cluster, error) {
	pw, err := s.Postgres.Password.Resolve()
	if err != nil {
		return nil, err
	}
	return pgtest.StartCluster(pgtest.Options{Name: "dr-" + s.Name, User: s.Postgres.User, Password: string(pw),
		Database: s.Postgres.Database, Settings: postgres.ServerSettings(topo, s), Listen: s.Gateway.LANAddress,
		Port: drPort, Namespace: s.Lab.Namespace})
}

// waitStreaming waits for every flow to stream (the initial table sync done).
func (d *drLab) waitStreaming(t *testing.T) {
	t.Helper()
	sess := postgres.NewSession(d.topo)
	defer sess.Close()
	obs := &pgdrill.Observer{Specs: pgdrill.TopologyFlows(d.topo), Pool: sess.Pool}
	var last []drill.FlowState
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		flows, err := obs.Flows(context.Background())
		if err != nil {
			continue
		}
		last = flows
		ok := len(flows) == len(d.topo.Flows)
		for _, f := range flows {
			ok = ok && f.State == drill.StateStreaming
		}
		if ok {
			return
		}
	}
	t.Fatalf("replication through the tunnels did not stream within 60s: %+v", last)
}

// writePassFiles writes each cluster's passfile (postgres.passfile), 0600 and
// owned by the postgres OS user the server runs as.
func writePassFiles(d *drLab) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for name, db := range d.dbs {
		lines, err := postgres.PassLines(d.topo, d.topo.Site(name))
		if err != nil {
			return err
		}
		content, err := postgres.PassFile(lines)
		if err != nil {
			return err
		}
		path := filepath.Join(db.Dir, "pgpass")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			return err
		}
		if err := os.Chown(path, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
