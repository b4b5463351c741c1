package apps_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// policyFixtures holds the fixture app declaring resources, update/rollback policy
// and a canary (no Go code names it). It is not among testdata/apps, which the lab
// test deploys.
const policyFixtures = "testdata/policyapps"

// appUpstream is the targets of upstream name in a kong.yml, as "target=weight".
func appUpstream(t *testing.T, kongYML []byte, name string) []string {
	t.Helper()
	var d struct {
		Upstreams []struct {
			Name    string
			Targets []struct {
				Target string
				Weight int
			}
		}
	}
	if err := yaml.Unmarshal(kongYML, &d); err != nil {
		t.Fatal(err)
	}
	for _, u := range d.Upstreams {
		if u.Name == name {
			var out []string
			for _, x := range u.Targets {
				out = append(out, fmt.Sprintf("%s=%d", x.Target, x.Weight))
			}
			return out
		}
	}
	t.Fatalf("kong.yml has no upstream %s", name)
	return nil
}

// TestPolicy: x-sitectl's resources, update and rollback policy reach the entry
// service's spec (over the compose file's own keys, which stay where x-sitectl is
// silent); the canary is a second service with its image and replicas at each site,
// and Kong splits the app's route between the two by its weight.
func TestPolicy(t *testing.T) {
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), policyFixtures)
	if len(topo.Apps) != 1 {
		t.Fatalf("apps %+v", topo.Apps)
	}
	a := topo.Apps[0]
	want := map[string]struct {
		image        string
		replicas     int
		targets      string // kong weights with endpoint_mode vip
		targetsDNSRR string
	}{
		"douala":  {"registry.example.org/shop/api:2.1.0-rc2", 2, "shop_api:8000=75 shop_api-canary:8000=25", "shop_api:8000=150 shop_api-canary:8000=75"},
		"yaounde": {"registry.example.org/shop/api:2.1.0-rc1", 1, "shop_api:8000=90 shop_api-canary:8000=10", "shop_api:8000=90 shop_api-canary:8000=30"},
		"cloud":   {"registry.example.org/shop/api:2.1.0-rc1", 1, "shop_api:8000=90 shop_api-canary:8000=10", "shop_api:8000=90 shop_api-canary:8000=30"},
	}
	for _, s := range topo.Sites {
		w, ok := want[s.Name]
		if !ok {
			t.Fatalf("unexpected site %s", s.Name)
		}
		in := stacks.Input{Topo: topo, Site: s}
		r, err := stacks.RenderApp(in, a)
		if err != nil {
			t.Fatal(err)
		}
		golden.Assert(t, "policy/"+s.Name+"-shop.yaml", r.Compose)
		d, err := stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{References: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Services) != 2 {
			t.Fatalf("%s: %d services, want the app and its canary", s.Name, len(d.Services))
		}
		stable, canary := d.Services[0].Spec, d.Services[1].Spec
		if stable.Name != "shop_api" || canary.Name != "shop_api-canary" {
			t.Fatalf("%s: services %s, %s", s.Name, stable.Name, canary.Name)
		}
		res := stable.TaskTemplate.Resources
		if res == nil || res.Limits == nil || res.Reservations == nil || res.Limits.NanoCPUs != 5e8 || res.Limits.MemoryBytes != 256<<20 ||
			res.Limits.Pids != 200 || res.Reservations.NanoCPUs != 1e8 || res.Reservations.MemoryBytes != 64<<20 {
			t.Errorf("%s: resources %+v %+v", s.Name, res.Limits, res.Reservations)
		}
		uc, rc := stable.UpdateConfig, stable.RollbackConfig
		if uc == nil || uc.Parallelism != 2 || uc.Delay.String() != "10s" || uc.Monitor.String() != "30s" || uc.Order != "start-first" || uc.FailureAction != "rollback" {
			t.Errorf("%s: update_config %+v", s.Name, uc)
		}
		if rc == nil || rc.Parallelism != 0 || rc.Order != "stop-first" || rc.FailureAction != "pause" {
			t.Errorf("%s: rollback_config %+v", s.Name, rc)
		}
		if *stable.Mode.Replicated.Replicas != 3 || stable.TaskTemplate.ContainerSpec.Image != "registry.example.org/shop/api:2.0.0" {
			t.Errorf("%s: stable %d × %s", s.Name, *stable.Mode.Replicated.Replicas, stable.TaskTemplate.ContainerSpec.Image)
		}
		if got := int(*canary.Mode.Replicated.Replicas); got != w.replicas || canary.TaskTemplate.ContainerSpec.Image != w.image ||
			canary.Labels[stacks.LabelCanary] != "true" || canary.Labels[stacks.LabelApp] != "shop" {
			t.Errorf("%s: canary %d × %s, labels %v; want %d × %s", s.Name, got, canary.TaskTemplate.ContainerSpec.Image, canary.Labels, w.replicas, w.image)
		}
		if canary.TaskTemplate.Resources == nil || canary.TaskTemplate.Resources.Limits.MemoryBytes != 256<<20 || canary.UpdateConfig == nil || canary.UpdateConfig.Order != "start-first" {
			t.Errorf("%s: the canary lacks the app's resources or policy", s.Name)
		}
		if len(canary.TaskTemplate.Networks) != len(stable.TaskTemplate.Networks) {
			t.Errorf("%s: canary networks %v, stable %v", s.Name, canary.TaskTemplate.Networks, stable.TaskTemplate.Networks)
		}
		kyml, err := kong.Config(topo, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(appUpstream(t, kyml, "shop.app"), " "); got != w.targets {
			t.Errorf("%s: shop.app targets %s, want %s", s.Name, got, w.targets)
		}
		if s.Name == "douala" {
			golden.Assert(t, "policy/douala-kong.yml", kyml)
		}
	}
	// endpoint_mode dnsrr: every task is a target, so each side's weight is scaled
	// by the other side's replicas.
	a.EndpointMode = "dnsrr"
	for _, s := range topo.Sites {
		kyml, err := kong.Config(topo, s)
		if err != nil {
			t.Fatal(err)
		}
		if got, w := strings.Join(appUpstream(t, kyml, "shop.app"), " "), want[s.Name].targetsDNSRR; got != w {
			t.Errorf("%s dnsrr: shop.app targets %s, want %s", s.Name, got, w)
		}
	}
}

// TestNoCanaryNoSplit: without a canary the app's upstream has its one target.
func TestNoCanaryNoSplit(t *testing.T) {
	topo := stacktest.WithApps(t, stacktest.Load(t, "dev"), fixtures)
	for _, s := range topo.Sites {
		kyml, err := kong.Config(topo, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appUpstream(t, kyml, "hello.app"); len(got) != 1 || got[0] != "hello_web:8080=100" {
			t.Errorf("%s: hello.app targets %v", s.Name, got)
		}
	}
	_ = sites.RouteLocal
}
