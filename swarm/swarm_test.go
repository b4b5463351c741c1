package swarm

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// fakeSwarm is the pure-logic stand-in for a site's engines: a swarm that records
// inits, joins and label updates. Real engines are exercised by the lab tests
// (lab.TestLabUpStatusDown plans every lab site's swarm after lab up).
type fakeSwarm struct {
	cluster string
	nodes   map[string]*swarm.Node // by ID
	calls   []string
}

type fakeEngine struct {
	s     *fakeSwarm
	name  string
	id    string
	state swarm.LocalNodeState
	mgr   bool
	other string // a foreign cluster ID
}

func (e *fakeEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	info := system.Info{}
	info.Swarm.LocalNodeState = e.state
	info.Swarm.NodeID = e.id
	info.Swarm.ControlAvailable = e.mgr
	if e.mgr {
		id := e.s.cluster
		if e.other != "" {
			id = e.other
		}
		info.Swarm.Cluster = &swarm.ClusterInfo{ID: id}
	}
	return client.SystemInfoResult{Info: info}, nil
}

func (e *fakeEngine) SwarmInit(_ context.Context, o client.SwarmInitOptions) (client.SwarmInitResult, error) {
	e.s.calls = append(e.s.calls, "init "+e.name+" "+o.AdvertiseAddr+" pools="+prefixes(o.DefaultAddrPool))
	e.s.cluster = "c1"
	e.join(swarm.NodeRoleManager)
	return client.SwarmInitResult{NodeID: e.id}, nil
}

func prefixes(ps []netip.Prefix) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}

func (e *fakeEngine) join(role swarm.NodeRole) {
	e.id = "id-" + e.name
	e.state = swarm.LocalNodeStateActive
	e.mgr = role == swarm.NodeRoleManager
	e.s.nodes[e.id] = &swarm.Node{ID: e.id, Spec: swarm.NodeSpec{Role: role}}
}

func (e *fakeEngine) SwarmJoin(_ context.Context, o client.SwarmJoinOptions) (client.SwarmJoinResult, error) {
	role := swarm.NodeRoleWorker
	if o.JoinToken == "tok-manager" {
		role = swarm.NodeRoleManager
	}
	e.s.calls = append(e.s.calls, "join "+e.name+" "+string(role)+" via "+strings.Join(o.RemoteAddrs, ","))
	e.join(role)
	return client.SwarmJoinResult{}, nil
}

func (e *fakeEngine) SwarmInspect(context.Context, client.SwarmInspectOptions) (client.SwarmInspectResult, error) {
	var sw swarm.Swarm
	sw.JoinTokens = swarm.JoinTokens{Worker: "tok-worker", Manager: "tok-manager"}
	return client.SwarmInspectResult{Swarm: sw}, nil
}

func (e *fakeEngine) NodeInspect(_ context.Context, id string, _ client.NodeInspectOptions) (client.NodeInspectResult, error) {
	n, ok := e.s.nodes[id]
	if !ok {
		return client.NodeInspectResult{}, errors.New("node not found")
	}
	return client.NodeInspectResult{Node: *n}, nil
}

func (e *fakeEngine) NodeUpdate(_ context.Context, id string, o client.NodeUpdateOptions) (client.NodeUpdateResult, error) {
	e.s.calls = append(e.s.calls, "update "+id)
	e.s.nodes[id].Spec = o.Spec
	return client.NodeUpdateResult{}, nil
}

func douala() *sites.Site {
	return &sites.Site{
		Name:  "douala",
		Swarm: sites.Swarm{DefaultAddrPool: []string{"10.110.0.0/16"}, SubnetSize: 24},
		Nodes: []sites.Node{
			{Name: "douala-app1", Role: "manager", Address: "10.10.0.11", Labels: map[string]string{"role": "app"}},
			{Name: "douala-db1", Role: "worker", Address: "10.10.0.12", Labels: map[string]string{"role": "db"}},
		},
	}
}

func engines(s *fakeSwarm, es ...*fakeEngine) map[string]Engine {
	out := map[string]Engine{}
	for _, e := range es {
		e.s = s
		out[e.name] = e
	}
	return out
}

func summary(steps []plan.Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.String())
	}
	return out
}

func TestPlanFromNothingThenConverged(t *testing.T) {
	ctx := context.Background()
	s := &fakeSwarm{nodes: map[string]*swarm.Node{}}
	app := &fakeEngine{name: "douala-app1", state: swarm.LocalNodeStateInactive}
	db := &fakeEngine{name: "douala-db1", state: swarm.LocalNodeStateInactive}
	es := engines(s, app, db)
	site := douala()

	steps, err := Plan(ctx, site, es)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"+ swarm douala", "+ node douala-db1", "~ node douala-app1", "~ node douala-db1"}
	if got := summary(steps); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("steps = %v, want %v", got, want)
	}
	if len(s.calls) != 0 {
		t.Fatalf("Plan changed something: %v", s.calls)
	}
	if err := Apply(ctx, steps); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{
		"init douala-app1 10.10.0.11 pools=10.110.0.0/16",
		"join douala-db1 worker via 10.10.0.11:2377",
		"update id-douala-app1", "update id-douala-db1",
	}
	if strings.Join(s.calls, "|") != strings.Join(wantCalls, "|") {
		t.Fatalf("calls = %v, want %v", s.calls, wantCalls)
	}
	if got := s.nodes["id-douala-db1"].Spec.Labels; got["role"] != "db" || got["site"] != "douala" {
		t.Errorf("db labels = %v", got)
	}
	// Converged: a second plan has nothing to do.
	steps, err = Plan(ctx, site, es)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 0 {
		t.Fatalf("second plan = %v, want no steps", summary(steps))
	}
	// A label changed in the config is one update, shown as a diff.
	site.Nodes[1].Labels["role"] = "monitor"
	steps, err = Plan(ctx, site, es)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 || steps[0].Diff[0] != "label role: db → monitor" {
		t.Fatalf("plan after a label change = %v %v", summary(steps), steps)
	}
}

func TestPlanRefusesForeignSwarms(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		app  *fakeEngine
		db   *fakeEngine
		want string
	}{
		{"worker of an unknown swarm", &fakeEngine{name: "douala-app1", state: swarm.LocalNodeStateInactive},
			&fakeEngine{name: "douala-db1", state: swarm.LocalNodeStateActive, id: "x"}, "none of the site's managers"},
		{"manager of another swarm", &fakeEngine{name: "douala-app1", state: swarm.LocalNodeStateActive, mgr: true, id: "a"},
			&fakeEngine{name: "douala-db1", state: swarm.LocalNodeStateActive, mgr: true, id: "b", other: "c2"}, "different swarms"},
		{"node in error", &fakeEngine{name: "douala-app1", state: swarm.LocalNodeStateError},
			&fakeEngine{name: "douala-db1", state: swarm.LocalNodeStateInactive}, "swarm leave --force"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &fakeSwarm{nodes: map[string]*swarm.Node{"a": {ID: "a"}, "b": {ID: "b"}}, cluster: "c1"}
			_, err := Plan(ctx, douala(), engines(s, c.app, c.db))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	site := douala()
	site.Nodes[0].Role = "worker"
	s := &fakeSwarm{nodes: map[string]*swarm.Node{}}
	_, err := Plan(ctx, site, engines(s, &fakeEngine{name: "douala-app1", state: swarm.LocalNodeStateInactive}, &fakeEngine{name: "douala-db1", state: swarm.LocalNodeStateInactive}))
	if err == nil || !strings.Contains(err.Error(), "no node has role manager") {
		t.Fatalf("no manager: %v", err)
	}
}
