package live

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/pgdrill"
	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
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
	dbs  map[string]*siteDB
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
	d := &drLab{lab: l, dbs: map[string]*siteDB{}}
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
		if err := tunnels.SetupTransit(ctx, s.Lab.Namespace, g); err != nil {
			return nil, err
		}
	}
	for _, g := range gws {
		if err := tunnels.Install(ctx, l.Topo, g); err != nil {
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
		d.set = append(d.set, s.Name+":postgres.host="+s.Gateway.LANAddress)
	}
	d.topo, err = sites.Load(sites.Options{Dir: l.ConfigDir, Env: l.Topo.Env, Environ: []string{}, Set: d.set})
	if err != nil {
		d.close()
		return nil, err
	}
	sess := postgres.NewSession(d.topo)
	defer sess.Close()
	p, err := postgres.Plan(ctx, d.topo, sess, postgres.Options{Wait: time.Minute})
	if err == nil {
		err = p.Err()
	}
	if err == nil {
		err = p.Apply(ctx, nil)
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("replication reconcile: %w", err)
	}
	return d, nil
}

func (d *drLab) close() {
	for _, db := range d.dbs {
		db.stop()
	}
}

// siteDB is one PostgreSQL 15 server running in a site's gateway namespace.
type siteDB struct {
	site string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startSiteDB(ctx context.Context, topo *sites.Topology, s *sites.Site) (*siteDB, error) {
	const bin = "/usr/lib/postgresql/15/bin"
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	pw, err := s.Postgres.Password.Resolve()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dr-pg-"+s.Name+"-")
	if err != nil {
		return nil, err
	}
	db := &siteDB{site: s.Name, dir: dir, done: make(chan struct{})}
	fail := func(err error) (*siteDB, error) {
		db.stop()
		return nil, fmt.Errorf("postgres at %s: %w", s.Name, err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fail(err)
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	hba, err := os.OpenFile(filepath.Join(dir, "data", "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(hba, "host all all 0.0.0.0/0 scram-sha-256\nhost replication all 0.0.0.0/0 scram-sha-256")
	hba.Close()
	settings := postgres.ServerSettings(topo, s)
	for k, v := range map[string]string{"listen_addresses": s.Gateway.LANAddress, "port": strconv.Itoa(drPort),
		"unix_socket_directories": dir, "fsync": "off", "full_page_writes": "off", "shared_buffers": "32MB",
		"log_min_messages": "warning"} {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--",
		filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data")}
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return fail(err)
	}
	cmd := netns.Command(context.Background(), s.Lab.Namespace, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	db.cmd = cmd
	go func() { _ = cmd.Wait(); logf.Close(); close(db.done) }()
	var conn *pgx.Conn
	for {
		conn, err = pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", dir, drPort))
		if err == nil {
			break
		}
		select {
		case <-db.done:
			b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			return fail(fmt.Errorf("postgres exited: %s", b))
		case <-ctx.Done():
			return fail(err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'", pgx.Identifier{s.Postgres.User}.Sanitize(), strings.ReplaceAll(string(pw), "'", "''")),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{s.Postgres.Database}.Sanitize(), pgx.Identifier{s.Postgres.User}.Sanitize()),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
	}
	return db, nil
}

func (db *siteDB) stop() {
	if db.cmd != nil && db.cmd.Process != nil {
		_ = db.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-db.done:
		case <-time.After(15 * time.Second):
			_ = db.cmd.Process.Kill()
			<-db.done
		}
	}
	_ = os.RemoveAll(db.dir)
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
