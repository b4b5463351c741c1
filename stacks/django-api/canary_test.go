package djangoapi_test

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	djangoapi "github.com/sitectl/sitectl/stacks/django-api"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestCanary: with values.kong.canary enabled the stack runs the service Kong's
// canary target names (django-api_api-canary) with the canary image, unpublished;
// without a canary image it refuses with the key to set.
func TestCanary(t *testing.T) {
	topo := stacktest.Load(t, "production", "douala:values.kong.canary.enabled=true", "douala:values.kong.canary.replicas=2",
		"douala:images.django-api-canary=registry.example.com/sitectl/django-api:1.1.0-rc1")
	in := stacks.Input{Topo: topo, Site: topo.Site("douala")}
	r, err := djangoapi.Stack{}.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stacktest.LoadCompose(t, r)
	d := stacktest.Convert(t, in, r)
	if len(cfg.Services) != 2 || len(d.Services) != 2 {
		t.Fatalf("want the stable and the canary service, got %d", len(cfg.Services))
	}
	var canary, stable bool
	for _, svc := range cfg.Services {
		switch svc.Name {
		case "api":
			stable = svc.Image == "registry.example.com/sitectl/django-api:1.0.0"
		case "api-canary":
			canary = svc.Image == "registry.example.com/sitectl/django-api:1.1.0-rc1" && len(svc.Ports) == 0 &&
				svc.Deploy.Replicas != nil && *svc.Deploy.Replicas == 2
		}
	}
	if !stable || !canary {
		t.Errorf("services: %+v", cfg.Services)
	}
	golden.Assert(t, "canary-douala-production.yaml", r.Compose)

	// The other sites have no canary.
	if r, err := (djangoapi.Stack{}).Render(stacks.Input{Topo: topo, Site: topo.Site("yaounde")}); err != nil || strings.Contains(string(r.Compose), "api-canary") {
		t.Errorf("yaounde: err %v, canary rendered: %v", err, strings.Contains(string(r.Compose), "api-canary"))
	}

	topo = stacktest.Load(t, "production", "douala:values.kong.canary.enabled=true")
	_, err = djangoapi.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err == nil || !strings.Contains(err.Error(), "images.django-api-canary") {
		t.Fatalf("canary without an image: err %v", err)
	}
}
