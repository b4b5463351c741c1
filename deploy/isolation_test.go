package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// memSwarm is an in-memory swarm manager: objects are stored as created, and every
// service's tasks run, except those of an image containing "missing", whose tasks
// fail as an engine without the image fails them. It records service updates.
type memSwarm struct {
	Engine // the methods a deploy of the stacks and apps parts does not call: nil, they panic

	mu       sync.Mutex
	n        int
	networks []network.Summary
	secrets  []swarm.Secret
	configs  []swarm.Config
	services []swarm.Service
	updated  []string
}

func (m *memSwarm) id() string { m.n++; return fmt.Sprintf("id%d", m.n) }

func named(f client.Filters, name string) bool { return len(f["name"]) == 0 || f["name"][name] }

func (m *memSwarm) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: system.Info{Swarm: swarm.Info{LocalNodeState: "active", ControlAvailable: true}}}, nil
}

func (m *memSwarm) SwarmInspect(context.Context, client.SwarmInspectOptions) (client.SwarmInspectResult, error) {
	return client.SwarmInspectResult{Swarm: swarm.Swarm{ClusterInfo: swarm.ClusterInfo{ID: "mem-cluster"}}}, nil
}

func (m *memSwarm) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return client.NetworkListResult{Items: append([]network.Summary(nil), m.networks...)}, nil
}

func (m *memSwarm) NetworkCreate(_ context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := network.Summary{Network: network.Network{Name: name, ID: m.id(), Driver: o.Driver, Labels: o.Labels, Options: o.Options,
		Attachable: o.Attachable, Internal: o.Internal, Scope: "swarm"}}
	if o.IPAM != nil {
		n.IPAM = *o.IPAM
	}
	m.networks = append(m.networks, n)
	return client.NetworkCreateResult{ID: n.ID}, nil
}

func (m *memSwarm) SecretList(_ context.Context, o client.SecretListOptions) (client.SecretListResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []swarm.Secret
	for _, x := range m.secrets {
		if named(o.Filters, x.Spec.Name) {
			out = append(out, x)
		}
	}
	return client.SecretListResult{Items: out}, nil
}

func (m *memSwarm) SecretCreate(_ context.Context, o client.SecretCreateOptions) (client.SecretCreateResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	x := swarm.Secret{ID: m.id(), Spec: o.Spec}
	m.secrets = append(m.secrets, x)
	return client.SecretCreateResult{ID: x.ID}, nil
}

func (m *memSwarm) ConfigList(_ context.Context, o client.ConfigListOptions) (client.ConfigListResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []swarm.Config
	for _, x := range m.configs {
		if named(o.Filters, x.Spec.Name) {
			out = append(out, x)
		}
	}
	return client.ConfigListResult{Items: out}, nil
}

func (m *memSwarm) ConfigCreate(_ context.Context, o client.ConfigCreateOptions) (client.ConfigCreateResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.configs {
		if x.Spec.Name == o.Spec.Name {
			return client.ConfigCreateResult{}, errors.New("config " + o.Spec.Name + " already exists")
		}
	}
	x := swarm.Config{ID: m.id(), Spec: o.Spec}
	m.configs = append(m.configs, x)
	return client.ConfigCreateResult{ID: x.ID}, nil
}

func (m *memSwarm) ConfigInspect(_ context.Context, id string, _ client.ConfigInspectOptions) (client.ConfigInspectResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.configs {
		if x.ID == id {
			return client.ConfigInspectResult{Config: x}, nil
		}
	}
	return client.ConfigInspectResult{}, errors.New("config " + id + " not found")
}

func (m *memSwarm) ConfigUpdate(context.Context, string, client.ConfigUpdateOptions) (client.ConfigUpdateResult, error) {
	return client.ConfigUpdateResult{}, nil
}

func (m *memSwarm) ConfigRemove(_ context.Context, id string, _ client.ConfigRemoveOptions) (client.ConfigRemoveResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.configs {
		if x.ID == id {
			m.configs = append(m.configs[:i], m.configs[i+1:]...)
			return client.ConfigRemoveResult{}, nil
		}
	}
	return client.ConfigRemoveResult{}, errors.New("config " + id + " not found")
}

// tasks are a service's tasks now: one per replica, running or failed.
func tasks(svc swarm.Service) []swarm.Task {
	n := 1
	if r := svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		n = int(*r.Replicas)
	}
	image := svc.Spec.TaskTemplate.ContainerSpec.Image
	var out []swarm.Task
	for range n {
		t := swarm.Task{ServiceID: svc.ID, DesiredState: swarm.TaskStateRunning, Meta: swarm.Meta{CreatedAt: time.Now()},
			Status: swarm.TaskStatus{State: swarm.TaskStateRunning, Timestamp: time.Now()}}
		if strings.Contains(image, "missing") {
			t.Status.State, t.Status.Err = swarm.TaskStateRejected, "No such image: "+image
		}
		out = append(out, t)
	}
	return out
}

func (m *memSwarm) ServiceList(context.Context, client.ServiceListOptions) (client.ServiceListResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []swarm.Service
	for _, svc := range m.services {
		running := 0
		ts := tasks(svc)
		for _, t := range ts {
			if t.Status.State == swarm.TaskStateRunning {
				running++
			}
		}
		svc.ServiceStatus = &swarm.ServiceStatus{DesiredTasks: uint64(len(ts)), RunningTasks: uint64(running)}
		out = append(out, svc)
	}
	return client.ServiceListResult{Items: out}, nil
}

func (m *memSwarm) find(id string) int {
	for i, svc := range m.services {
		if svc.ID == id || svc.Spec.Name == id {
			return i
		}
	}
	return -1
}

func (m *memSwarm) ServiceInspect(_ context.Context, id string, _ client.ServiceInspectOptions) (client.ServiceInspectResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.find(id); i >= 0 {
		return client.ServiceInspectResult{Service: m.services[i]}, nil
	}
	return client.ServiceInspectResult{}, errors.New("service " + id + " not found")
}

func (m *memSwarm) ServiceCreate(_ context.Context, o client.ServiceCreateOptions) (client.ServiceCreateResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	svc := swarm.Service{ID: m.id(), Spec: o.Spec, Meta: swarm.Meta{UpdatedAt: time.Now()}}
	m.services = append(m.services, svc)
	return client.ServiceCreateResult{ID: svc.ID}, nil
}

func (m *memSwarm) ServiceUpdate(_ context.Context, id string, o client.ServiceUpdateOptions) (client.ServiceUpdateResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(id)
	if i < 0 {
		return client.ServiceUpdateResult{}, errors.New("service " + id + " not found")
	}
	m.services[i].Spec, m.services[i].UpdatedAt = o.Spec, time.Now()
	m.services[i].UpdateStatus = &swarm.UpdateStatus{State: swarm.UpdateStateCompleted}
	m.updated = append(m.updated, o.Spec.Name)
	return client.ServiceUpdateResult{}, nil
}

func (m *memSwarm) TaskList(_ context.Context, o client.TaskListOptions) (client.TaskListResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []swarm.Task
	for _, svc := range m.services {
		if want := o.Filters["service"]; len(want) > 0 && !want[svc.ID] && !want[svc.Spec.Name] {
			continue
		}
		out = append(out, tasks(svc)...)
	}
	return client.TaskListResult{Items: out}, nil
}

// serviceNames are the services the swarm holds.
func (m *memSwarm) serviceNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, svc := range m.services {
		out = append(out, svc.Spec.Name)
	}
	return out
}

// afterPart is a part after the apps: it records that it ran.
type afterPart struct{ ran *bool }

func (afterPart) Name() string { return "after" }
func (p afterPart) Plan(context.Context, *sites.Topology, *sites.Site) ([]plan.Step, error) {
	return []plan.Step{{Site: "douala", Component: "after", Action: plan.Update, Name: "x",
		Apply: func(context.Context) error { *p.ran = true; return nil }}}, nil
}

// TestAppFailureIsolated: an app whose image no engine has (alpha, deployed first)
// fails only its own group: the built-in stack, the other app (beta) and the part
// after the apps still deploy and converge; the site's error names the app and the
// service's reason; no other service is updated (or rolled back). The plan shows
// each app's steps under its own group.
func TestAppFailureIsolated(t *testing.T) {
	t.Setenv("SITECTL_PG_PASSWORD", "not-a-real-secret")
	dir := filepath.Join(t.TempDir(), "apps")
	for name, image := range map[string]string{"alpha": "registry.example.com/missing/alpha:1", "beta": "registry.example.com/beta:1"} {
		body := fmt.Sprintf("services:\n  web:\n    image: %s\nx-sitectl:\n  port: 8080\n  sites: [douala]\n  routes: [{path: /%s}]\n", image, name)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "compose.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}, KnownStacks: append([]string{"alpha", "beta"}, sites.KnownStacks...)})
	if err != nil {
		t.Fatal(err)
	}
	list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	site := topo.Site("douala")
	site.Stacks = []string{"postgres"}
	eng := &memSwarm{}
	ran := false
	parts := []plan.Part{Stacks, Apps, afterPart{ran: &ran}}
	opts := Options{Environ: []string{}, Poll: 5 * time.Millisecond,
		Open: func(context.Context, *sites.Site) (Engine, func(), error) { return eng, func() {}, nil }}

	p := Plan(context.Background(), topo, []*sites.Site{site}, parts, opts)
	if f := p.Failed(); len(f) > 0 {
		t.Fatalf("plan failed: %+v", p.Sites)
	}
	groups := map[string]string{}
	for _, st := range p.Sites[0].Steps {
		if st.Component == ComponentService {
			groups[st.Name] = st.Group
		}
	}
	if groups["alpha_web"] != "app alpha" || groups["beta_web"] != "app beta" || groups["postgres_db"] != "" {
		t.Errorf("service steps' groups %v, want alpha_web in app alpha, beta_web in app beta, postgres_db in none", groups)
	}
	var text bytes.Buffer
	if err := p.Render(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "  app alpha:\n  + network alpha_default") || !strings.Contains(text.String(), "  app beta:\n") {
		t.Errorf("the plan does not show the apps' groups:\n%s", text.String())
	}

	res := Deploy(context.Background(), topo, []*sites.Site{site}, parts, opts)
	err = res[0].Err()
	if err == nil {
		t.Fatal("deploy succeeded with alpha's image missing")
	}
	msg := err.Error()
	if !strings.Contains(msg, "app alpha") || !strings.Contains(msg, "alpha_web") || !strings.Contains(msg, "No such image") || strings.Contains(msg, "app beta") {
		t.Errorf("error %q: want app alpha, its service and the reason, and not app beta", msg)
	}
	have := strings.Join(eng.serviceNames(), " ")
	for _, want := range []string{"postgres_db", "alpha_web", "beta_web"} {
		if !strings.Contains(have, want) {
			t.Errorf("services %s: %s was not deployed", have, want)
		}
	}
	if !ran {
		t.Error("the part after the apps did not run")
	}
	if len(eng.updated) > 0 {
		t.Errorf("services updated (rolled back?) after alpha failed: %v", eng.updated)
	}
	var appliedBeta bool
	for _, st := range res[0].Applied {
		appliedBeta = appliedBeta || st.Name == "beta_web"
	}
	if !appliedBeta {
		t.Errorf("applied %v lacks beta_web", res[0].Applied)
	}

	// A second deploy: beta and postgres are unchanged (no step); alpha still fails alone.
	res = Deploy(context.Background(), topo, []*sites.Site{site}, parts, opts)
	if err := res[0].Err(); err == nil || !strings.Contains(err.Error(), "app alpha") || strings.Contains(err.Error(), "app beta") {
		t.Errorf("second deploy: %v", err)
	}
	for _, st := range res[0].Applied {
		if st.Component == ComponentService {
			t.Errorf("second deploy applied %s", st)
		}
	}
}
