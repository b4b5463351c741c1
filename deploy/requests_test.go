package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// countingEngine counts the requests a plan or deploy sends to an engine, by
// method: the reads by name, every write as "write".
type countingEngine struct {
	Engine
	mu sync.Mutex
	n  map[string]int
}

func (c *countingEngine) count(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[name]++
}

func (c *countingEngine) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

func (c *countingEngine) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

func (c *countingEngine) Info(ctx context.Context, o client.InfoOptions) (client.SystemInfoResult, error) {
	c.count("info")
	return c.Engine.Info(ctx, o)
}

func (c *countingEngine) SwarmInspect(ctx context.Context, o client.SwarmInspectOptions) (client.SwarmInspectResult, error) {
	c.count("swarm inspect")
	return c.Engine.SwarmInspect(ctx, o)
}

func (c *countingEngine) NodeList(ctx context.Context, o client.NodeListOptions) (client.NodeListResult, error) {
	c.count("node list")
	return c.Engine.NodeList(ctx, o)
}

func (c *countingEngine) NetworkList(ctx context.Context, o client.NetworkListOptions) (client.NetworkListResult, error) {
	c.count("network list")
	return c.Engine.NetworkList(ctx, o)
}

func (c *countingEngine) SecretList(ctx context.Context, o client.SecretListOptions) (client.SecretListResult, error) {
	c.count("secret list")
	return c.Engine.SecretList(ctx, o)
}

func (c *countingEngine) ConfigList(ctx context.Context, o client.ConfigListOptions) (client.ConfigListResult, error) {
	c.count("config list")
	return c.Engine.ConfigList(ctx, o)
}

func (c *countingEngine) ConfigInspect(ctx context.Context, id string, o client.ConfigInspectOptions) (client.ConfigInspectResult, error) {
	c.count("config inspect")
	return c.Engine.ConfigInspect(ctx, id, o)
}

func (c *countingEngine) ServiceList(ctx context.Context, o client.ServiceListOptions) (client.ServiceListResult, error) {
	c.count("service list")
	return c.Engine.ServiceList(ctx, o)
}

func (c *countingEngine) ServiceInspect(ctx context.Context, id string, o client.ServiceInspectOptions) (client.ServiceInspectResult, error) {
	c.count("service inspect")
	return c.Engine.ServiceInspect(ctx, id, o)
}

func (c *countingEngine) TaskList(ctx context.Context, o client.TaskListOptions) (client.TaskListResult, error) {
	c.count("task list")
	return c.Engine.TaskList(ctx, o)
}

func (c *countingEngine) NetworkCreate(ctx context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	c.count("write")
	return c.Engine.NetworkCreate(ctx, name, o)
}

func (c *countingEngine) SecretCreate(ctx context.Context, o client.SecretCreateOptions) (client.SecretCreateResult, error) {
	c.count("write")
	return c.Engine.SecretCreate(ctx, o)
}

func (c *countingEngine) ConfigCreate(ctx context.Context, o client.ConfigCreateOptions) (client.ConfigCreateResult, error) {
	c.count("write")
	return c.Engine.ConfigCreate(ctx, o)
}

func (c *countingEngine) ServiceCreate(ctx context.Context, o client.ServiceCreateOptions) (client.ServiceCreateResult, error) {
	c.count("write")
	return c.Engine.ServiceCreate(ctx, o)
}

func (c *countingEngine) ServiceUpdate(ctx context.Context, id string, o client.ServiceUpdateOptions) (client.ServiceUpdateResult, error) {
	c.count("write")
	return c.Engine.ServiceUpdate(ctx, id, o)
}

// deployedWithApps is the example's dev topology with n generated apps (appgen),
// its three sites deployed (the stacks and apps parts) into in-memory swarms, one
// counting engine per site.
func deployedWithApps(t *testing.T, n int) (*sites.Topology, map[string]*countingEngine, Options) {
	t.Helper()
	for _, v := range []string{"PG_PASSWORD", "PG_APP_PASSWORD", "DJANGO_SECRET_KEY", "MONGO_KEYFILE", "MONGO_PASSWORD", "KONG_TLS_CERT", "KONG_TLS_KEY", "GRAFANA_ADMIN_PASSWORD",
		"ELASTIC_PASSWORD", "KIBANA_ES_PASSWORD", "LOGSTASH_ES_PASSWORD"} {
		t.Setenv("SITECTL_"+v, "test-not-a-secret")
	}
	dir := writeApps(t, n)
	names, err := apps.Names(dir)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", KnownStacks: append(names, sites.KnownStacks...)})
	if err != nil {
		t.Fatal(err)
	}
	list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	engs := map[string]*countingEngine{}
	for _, s := range topo.Sites {
		engs[s.Name] = &countingEngine{Engine: &memSwarm{}, n: map[string]int{}}
	}
	opts := Options{Environ: []string{}, Poll: time.Millisecond,
		Open: func(_ context.Context, s *sites.Site) (Engine, func(), error) { return engs[s.Name], func() {}, nil }}
	for _, r := range Deploy(context.Background(), topo, topo.Sites, []plan.Part{Stacks, Apps}, opts) {
		if r.Err() != nil {
			t.Fatalf("deploy with %d apps: %v", n, r.Err())
		}
	}
	return topo, engs, opts
}

// TestPlanReadsEachSwarmOnce: planning the stacks and apps parts reads each site's
// swarm once, whatever the number of apps (each app is a group of its own): one
// engine info, one swarm inspect, and the networks, secrets, configs and services
// listed once each; no inspect per object. With 1 app and with 6 the requests are
// the same, and the plan of a deployed system has no step to apply.
func TestPlanReadsEachSwarmOnce(t *testing.T) {
	want := map[string]int{"info": 1, "swarm inspect": 1, "network list": 1, "secret list": 1, "config list": 1, "service list": 1}
	for _, n := range []int{1, 6} {
		t.Run(fmt.Sprintf("%d apps", n), func(t *testing.T) {
			topo, engs, opts := deployedWithApps(t, n)
			for _, e := range engs {
				e.reset()
			}
			p := Plan(context.Background(), topo, topo.Sites, []plan.Part{Stacks, Apps}, opts)
			if f := p.Failed(); len(f) > 0 {
				t.Fatalf("plan failed for %v: %+v", f, p.Sites)
			}
			if c := p.Changes(); c != 0 {
				var b strings.Builder
				_ = p.Render(&b)
				t.Errorf("the plan right after the deploy has %d changes:\n%s", c, b.String())
			}
			for _, site := range slices.Sorted(maps.Keys(engs)) {
				if got := engs[site].counts(); !maps.Equal(got, want) {
					t.Errorf("%s: a plan with %d apps sent %v, want %v", site, n, got, want)
				}
			}
		})
	}
}

// TestPlanAfterApplyReadsAgain: within one run of a site, a plan made after steps
// were applied reads the swarm again (the snapshot is dropped when a step is
// applied), so it has nothing left to do; a plan before any apply reuses the
// snapshot.
func TestPlanAfterApplyReadsAgain(t *testing.T) {
	topo, engs, _ := deployedWithApps(t, 0)
	dir := writeApps(t, 1)
	list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	eng := engs["douala"]
	s := newSession(topo, topo.Site("douala"), eng, Options{Environ: []string{}, Poll: time.Millisecond})
	g := appGroups(s)[0]
	steps, err := g.plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 {
		t.Fatal("the first plan of a new app has no step")
	}
	eng.reset()
	if _, err := applySteps(context.Background(), g.sess, Options{}, g.name, steps, nil); err != nil {
		t.Fatal(err)
	}
	again, err := g.plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Errorf("the plan after applying %d steps still has %v", len(steps), again)
	}
	if c := eng.counts(); c["service list"] != 1 {
		t.Errorf("the plan after applying listed the services %d times, want 1 (read again)", c["service list"])
	}
}

// listFailing fails the secret and service lists.
type listFailing struct{ *countingEngine }

func (listFailing) SecretList(context.Context, client.SecretListOptions) (client.SecretListResult, error) {
	return client.SecretListResult{}, errors.New("secrets unavailable")
}

func (listFailing) ServiceList(context.Context, client.ServiceListOptions) (client.ServiceListResult, error) {
	return client.ServiceListResult{}, errors.New("services unavailable")
}

// TestPlanListErrorIsTheFirstInOrder: the four lists are sent at once; when some
// fail, the plan's error is the first in the order networks, secrets, configs,
// services, as when they were sent one after the other, and is not kept: the next
// plan of the run lists again.
func TestPlanListErrorIsTheFirstInOrder(t *testing.T) {
	topo, engs, _ := deployedWithApps(t, 0)
	eng := engs["douala"]
	s := newSession(topo, topo.Site("douala"), listFailing{eng}, Options{Environ: []string{}})
	for range 2 {
		eng.reset()
		_, err := s.planStacks(context.Background())
		if err == nil || err.Error() != "list secrets: secrets unavailable" {
			t.Errorf("plan: %v, want list secrets: secrets unavailable", err)
		}
		if c := eng.counts(); c["network list"] == 0 {
			t.Errorf("the plan after a failed list did not list again: %v", c)
		}
	}
}
