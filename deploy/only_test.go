package deploy

import (
	"testing"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"

	"github.com/sitectl/sitectl/stacks"
)

// TestOnly: deploy --app plans only the app's objects and the site networks, on
// both sides (desired and live), so nothing of another stack is changed or pruned;
// what sitectl does not manage is left for the planners as before.
func TestOnly(t *testing.T) {
	lbl := func(stack string) map[string]string { return stacks.ManagedLabels("douala", stack) }
	d := &stacks.Desired{
		Stacks:   []string{"postgres", "hello"},
		Networks: []stacks.Network{{Stack: stacks.SiteStack, Name: "app"}, {Stack: "hello", Name: "hello_default"}, {Stack: "postgres", Name: "postgres_x"}},
		Secrets:  []stacks.Object{{Stack: "postgres", Name: "postgres_pw_1"}, {Stack: "hello", Name: "hello_tok_1"}},
		Configs:  []stacks.Object{{Stack: "postgres", Name: "postgres_c_1"}},
		Services: []stacks.Service{{Stack: "postgres", Name: "postgres_db"}, {Stack: "hello", Name: "hello_web", DependsOn: []string{"postgres_db"}, RollsAfter: []string{"postgres_db"}}},
	}
	l := emptyLive()
	l.networks["app"] = network.Summary{Network: network.Network{Name: "app", Labels: lbl(stacks.SiteStack)}}
	l.networks["postgres_x"] = network.Summary{Network: network.Network{Name: "postgres_x", Labels: lbl("postgres")}}
	l.networks["ingress"] = network.Summary{Network: network.Network{Name: "ingress"}}
	l.services["postgres_db"] = swarm.Service{Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "postgres_db", Labels: lbl("postgres")}}}
	l.services["hello_web"] = swarm.Service{Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "hello_web", Labels: lbl("hello")}}}
	l.services["other_web"] = swarm.Service{Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "other_web", Labels: lbl("other")}}}
	l.secrets = []liveObj{{Name: "postgres_pw_0", Labels: lbl("postgres")}, {Name: "hello_tok_0", Labels: lbl("hello")}}
	l.configs = []liveObj{{Name: "postgres_c_0", Labels: lbl("postgres")}}

	only(d, l, []string{"hello"})

	if len(d.Stacks) != 1 || len(d.Networks) != 2 || len(d.Secrets) != 1 || len(d.Configs) != 0 || len(d.Services) != 1 {
		t.Fatalf("desired kept %+v", d)
	}
	if svc := d.Services[0]; svc.Name != "hello_web" || len(svc.DependsOn) != 0 || len(svc.RollsAfter) != 0 {
		t.Errorf("hello_web kept %+v; its order after another stack's service must go (that service is not planned)", svc)
	}
	if _, ok := l.services["postgres_db"]; ok || len(l.services) != 1 {
		t.Errorf("live services kept %v, want hello_web only", l.services)
	}
	if _, ok := l.networks["postgres_x"]; ok || len(l.networks) != 2 {
		t.Errorf("live networks kept %v, want app and ingress", l.networks)
	}
	if len(l.secrets) != 1 || l.secrets[0].Name != "hello_tok_0" || len(l.configs) != 0 {
		t.Errorf("live secrets %v configs %v", l.secrets, l.configs)
	}
}
