package siteloss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/pgdrill"
	"github.com/sitectl/sitectl/internal/htmlpage"
	"github.com/sitectl/sitectl/lab/labgate"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
)

const testPassword = "siteloss-pw"

// clusters is three real PostgreSQL 15 clusters replicating as the repository's
// sites/ configure them; a lost site's cluster is replaced by an empty one on the
// same port (same configuration), as a site redeployed on new machines.
type clusters struct {
	t        *testing.T
	mu       sync.Mutex
	byName   map[string]*pgtest.Cluster
	old      map[string]*pgtest.Cluster
	settings map[string]map[string]string
	ports    map[string]int
}

func (c *clusters) Lose(_ context.Context, site string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byName[site].Stop()
}

func (c *clusters) Replace(_ context.Context, site string) error {
	n, err := pgtest.StartCluster(pgtest.Options{Name: "new" + site, Password: testPassword, Settings: c.settings[site], Port: c.ports[site]})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.byName[site] = n
	c.mu.Unlock()
	return nil
}

// SetAside halts the site's cluster and keeps its data (the old instance).
func (c *clusters) SetAside(_ context.Context, site string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.old[site] = c.byName[site]
	delete(c.byName, site)
	return c.old[site].Halt()
}

// Return starts the old cluster again on a port of its own.
func (c *clusters) Return(_ context.Context, site string) (string, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.old[site]
	if err := o.Restart(0); err != nil {
		return "", 0, err
	}
	return o.Host, o.Port, nil
}

func (c *clusters) Retire(_ context.Context, site string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.old[site].Stop()
}

func startClusters(t *testing.T) (*clusters, *sites.Topology) {
	labgate.Skip(t)
	if why := pgtest.Available(); why != "" {
		t.Skip("lab test: " + why)
	}
	t.Setenv("SITECTL_PG_PASSWORD", testPassword)
	t.Setenv("SITECTL_PG_APP_PASSWORD", testPassword+"-app")
	dir := t.TempDir()
	for _, f := range []string{"defaults.yaml", "cloud.yaml", "douala.yaml", "yaounde.yaml", "schema.sql"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "sites", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &clusters{t: t, byName: map[string]*pgtest.Cluster{}, old: map[string]*pgtest.Cluster{}, settings: map[string]map[string]string{}, ports: map[string]int{}}
	load := func() *sites.Topology {
		// Passwords in the connection string: the passfile path is proven by
		// replication/postgres (TestPassFileSubscription, TestLabSiteRebuild).
		set := []string{"postgres.sslmode=disable", "postgres.passfile=none"}
		for _, n := range []string{"cloud", "douala", "yaounde"} {
			port := 1
			if p := c.ports[n]; p != 0 {
				port = p
			}
			set = append(set, n+":postgres.host=127.0.0.1", fmt.Sprintf("%s:postgres.port=%d", n, port))
		}
		topo, err := sites.Load(sites.Options{Dir: dir, Environ: []string{"SITECTL_PG_PASSWORD=" + testPassword, "SITECTL_PG_APP_PASSWORD=" + testPassword + "-app"}, Set: set})
		if err != nil {
			t.Fatal(err)
		}
		return topo
	}
	topo := load()
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cl := range c.byName {
			_ = cl.Stop()
		}
		for _, cl := range c.old {
			_ = cl.Stop()
		}
	})
	for _, s := range topo.Sites {
		c.settings[s.Name] = postgres.ServerSettings(topo, s)
		c.settings[s.Name]["checkpoint_timeout"] = "1h"
		cl, err := pgtest.StartCluster(pgtest.Options{Name: s.Name, Password: testPassword, Settings: c.settings[s.Name]})
		if err != nil {
			t.Fatal(err)
		}
		c.byName[s.Name], c.ports[s.Name] = cl, cl.Port
	}
	return c, load()
}

// TestLabSiteLossDrill runs the drill on three real PostgreSQL 15 clusters for a
// spoke: the survivors keep writing, the lost spoke is rebuilt, every acknowledged
// write that left it before the loss is back everywhere, RPO and RTO are reported.
func TestLabSiteLossDrill(t *testing.T) {
	ctx := context.Background()
	c, topo := startClusters(t)
	sess := postgres.NewSession(topo)
	defer sess.Close()
	deployAll(t, topo, sess)
	r, err := Run(ctx, topo, sess, Options{Site: "douala", Writes: 200, Loser: c, Wait: time.Minute,
		Progress: func(k, s string) { t.Logf("  %s %s", k, s) }})
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	t.Log(r.Summary())
	if !r.Passed {
		t.Fatalf("drill failed: %s", strings.Join(r.Failed, "; "))
	}
	if r.Acknowledged["douala"] != 200 || r.Acknowledged["cloud"] != 400 || r.Acknowledged["yaounde"] != 400 {
		t.Errorf("acknowledged: %v; want douala 200, cloud and yaounde 400 (they write on during the loss)", r.Acknowledged)
	}
	if r.RTOSeconds <= 0 || r.Rebuild == nil || len(r.Verified) == 0 {
		t.Errorf("RTO %.1f, rebuild %v, %d verified: want all set", r.RTOSeconds, r.Rebuild != nil, len(r.Verified))
	}
	// Every row douala acknowledged and the survivors held at the loss is at douala.
	got, err := r.runIDs(ctx, "douala", "douala")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200-r.RPORows {
		t.Errorf("douala holds %d of its own drill rows after the rebuild; want 200 - RPO %d", len(got), r.RPORows)
	}
	checkHTML(t, r, `id="rto"`, "PASSED", `id="verified"`)
	observedAfterRebuild(t, topo, sess)
	interruptedRecovers(t, c, topo, sess)
}

// cancelAfterLoss is Ctrl-C right after the loss: the drill's context is cancelled
// once the site's database is gone.
type cancelAfterLoss struct {
	Loser
	cancel context.CancelFunc
}

func (l cancelAfterLoss) Lose(ctx context.Context, site string) error {
	err := l.Loser.Lose(ctx, site)
	l.cancel()
	return err
}

// interruptedRecovers: a drill of yaounde stopped right after its loss (Ctrl-C)
// needs recovery; Recover starts its database again and rebuilds it: every flow
// streams and replication is healthy again.
func interruptedRecovers(t *testing.T, c *clusters, topo *sites.Topology, sess *postgres.Session) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// In batches of 7 rows per transaction: 50 rows are 7 batches and a last of 1.
	r, err := Run(ctx, topo, sess, Options{Site: "yaounde", Writes: 50, Batch: 7, Loser: cancelAfterLoss{c, cancel}, Wait: time.Minute})
	if err == nil || r.Passed || !r.NeedsRecovery() {
		t.Fatalf("a drill interrupted after the loss: err %v, passed %v, needs recovery %v", err, r.Passed, r.NeedsRecovery())
	}
	if r.Acknowledged["yaounde"] != 50 || len(r.written["yaounde"]) != 50 {
		t.Errorf("yaounde acknowledged %d rows (%d recorded) in batches of 7; want 50", r.Acknowledged["yaounde"], len(r.written["yaounde"]))
	}
	if err := r.Recover(context.Background()); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if rec := r.Recovery; rec == nil || !rec.Replaced || !rec.Rebuilt || r.NeedsRecovery() {
		t.Fatalf("recovery %+v: want the database replaced and rebuilt", rec)
	}
	fresh := postgres.NewSession(topo)
	defer fresh.Close()
	// The resumed subscriptions' apply workers start within a few seconds.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		st, err := postgres.Status(context.Background(), topo, fresh)
		if err == nil && st.Healthy() {
			break
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New(st.Summary())
			}
			t.Fatalf("replication after the recovery: %v", err)
		}
	}
	observedAfterRebuild(t, topo, sess)
}

// observedAfterRebuild: the other drills' observer (drill/pgdrill) sees every flow
// of the rebuilt site, under its generation names, streaming.
func observedAfterRebuild(t *testing.T, topo *sites.Topology, sess *postgres.Session) {
	t.Helper()
	obs := pgdrill.LiveObserver(topo, sess.Pool)
	var flows []drill.FlowState
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		flows, err = obs.Flows(context.Background())
		streaming := err == nil && len(flows) == len(topo.Flows)
		for _, f := range flows {
			streaming = streaming && f.State == drill.StateStreaming
		}
		if streaming {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Errorf("after the rebuild the drills' observer does not see every flow streaming: %v %+v", err, flows)
}

// TestLabSiteLossDrillOldReturns runs the drill with the old instance kept: the
// hub stops taking douala's rows part-way through its writes (so some never leave
// it: RPO > 0), douala is lost and rebuilt; then the old instance comes back on an
// address of its own: a plan pointed at it is refused as fenced (generation 0 vs 1)
// and site reconcile brings its unreplicated rows to every site: RPO 0.
func TestLabSiteLossDrillOldReturns(t *testing.T) {
	ctx := context.Background()
	c, topo := startClusters(t)
	sess := postgres.NewSession(topo)
	defer sess.Close()
	deployAll(t, topo, sess)
	cloud, err := sess.Pool(ctx, "cloud")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() {
		// Once the hub holds 50 of douala's rows, it stops taking them.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var n int
			if err := cloud.QueryRow(ctx, `SELECT count(*) FROM public.sitectl_drill WHERE site = 'douala'`).Scan(&n); err != nil {
				held <- err
				return
			}
			if n >= 50 {
				_, err := cloud.Exec(ctx, `ALTER SUBSCRIPTION sitectl_douala_to_cloud DISABLE`)
				held <- err
				return
			}
		}
		held <- errors.New("the hub never held 50 of douala's rows")
	}()
	r, err := Run(ctx, topo, sess, Options{Site: "douala", Writes: 1000, Loser: c, Wait: time.Minute, OldReturns: true,
		Progress: func(k, s string) { t.Logf("  %s %s", k, s) }})
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	t.Log(r.Summary())
	if !r.Passed {
		t.Fatalf("drill failed: %s", strings.Join(r.Failed, "; "))
	}
	o := r.OldReturn
	if r.RPORows == 0 || o == nil || !o.Fenced || o.OwnGeneration != 0 || o.RecordedGeneration != 1 ||
		o.Reconciled != int64(r.RPORows) || o.Recovered != r.RPORows || o.RPOAfter != 0 {
		t.Fatalf("old instance's return: RPO %d, %+v; want RPO > 0, fenced (0 vs 1), all of it reconciled and recovered, RPO after 0", r.RPORows, o)
	}
	if !strings.Contains(o.Refusal, "generation 0") || !strings.Contains(o.Refusal, "generation 1") || !strings.Contains(o.Refusal, "site reconcile") {
		t.Errorf("the refusal does not name both generations and the choice: %s", o.Refusal)
	}
	checkHTML(t, r, `id="rpo-after"`, `id="old-return"`, "refused (fenced): generation 0 of itself, 1 recorded by its peers")
}

// checkHTML writes the report as HTML to a file, parses it, and checks it is
// self-contained and holds every want.
func checkHTML(t *testing.T, r *Report, want ...string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "siteloss.html")
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if refs, err := htmlpage.ExternalRefs(bytes.NewReader(b.Bytes())); err != nil || len(refs) > 0 {
		t.Errorf("HTML report: external references %v, %v", refs, err)
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w) {
			t.Errorf("HTML report (%s) lacks %q", path, w)
		}
	}
}

// deployAll applies a plain plan (every flow) and waits for healthy replication.
func deployAll(t *testing.T, topo *sites.Topology, sess *postgres.Session) {
	t.Helper()
	ctx := context.Background()
	p, err := postgres.Plan(ctx, topo, sess, postgres.Options{Wait: 30 * time.Second})
	if err != nil || p.Err() != nil {
		t.Fatalf("plan: %v %v", err, p.Err())
	}
	// Phase by phase across the sites, as deploy's parallel sites end up doing.
	var all []postgres.Change
	for _, cs := range p.Changes {
		all = append(all, cs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Op.Phase < all[j].Op.Phase })
	for _, ch := range all {
		if ch.Step.Apply == nil {
			continue
		}
		if err := ch.Step.Apply(ctx); err != nil {
			t.Fatalf("apply %s at %s: %v", ch.Step, ch.Step.Site, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := postgres.Status(ctx, topo, sess)
		if err == nil && st.Healthy() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replication not healthy: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
