package stacks_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sitectl/sitectl/stacks"
	djangoapi "github.com/sitectl/sitectl/stacks/django-api"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestAppPlacementAndMongo: an app with placement: app-nodes runs on the site's app
// nodes (at the hub, which has none, on the hub's own nodes) next to the compose
// file's own constraint, and with mongo: true gets the MONGO_URI the Django API gets.
func TestAppPlacementAndMongo(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "reports"), 0o755); err != nil {
		t.Fatal(err)
	}
	compose := `services:
  web:
    image: registry.example.org/reports:1.0.0
    environment: [MODE=batch]
    deploy:
      placement:
        constraints: [node.platform.os == linux]
x-sitectl:
  placement: app-nodes
  mongo: true
`
	if err := os.WriteFile(filepath.Join(dir, "reports", "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), dir)
	for _, tc := range []struct{ site, constraint string }{
		{"douala", "node.labels.role == app"},
		{"cloud", "node.labels.site == cloud"},
	} {
		in := stacks.Input{Topo: topo, Site: topo.Site(tc.site)}
		r, err := stacks.RenderApp(in, topo.Apps[0])
		if err != nil {
			t.Fatal(err)
		}
		cfg := stacktest.LoadCompose(t, r)
		svc := cfg.Services[0]
		if want := []string{"node.platform.os == linux", tc.constraint}; !slices.Equal(svc.Deploy.Placement.Constraints, want) {
			t.Errorf("%s: constraints %v, want %v", tc.site, svc.Deploy.Placement.Constraints, want)
		}
		uri := svc.Environment["MONGO_URI"]
		if want := djangoapi.MongoURI(topo, in.Site); uri == nil || *uri != want || want == "" {
			t.Errorf("%s: MONGO_URI %v, want the API's %q", tc.site, uri, want)
		}
		if m := svc.Environment["MODE"]; m == nil || *m != "batch" {
			t.Errorf("%s: the compose file's own MODE lost: %v", tc.site, svc.Environment)
		}
	}
}

// TestCanaryEnvironment: x-sitectl.canary.environment is set on the canary service
// only, over the entry service's own value.
func TestCanaryEnvironment(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	compose := `services:
  web:
    image: registry.example.org/shop:1.0.0
    environment: [API_VARIANT=stable, MODE=web]
x-sitectl:
  port: 8080
  routes: [{path: /shop}]
  canary:
    image: registry.example.org/shop:1.1.0
    weight: 10
    environment: {API_VARIANT: canary}
`
	if err := os.WriteFile(filepath.Join(dir, "shop", "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), dir)
	r, err := stacks.RenderApp(stacks.Input{Topo: topo, Site: topo.Site("douala")}, topo.Apps[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, svc := range stacktest.LoadCompose(t, r).Services {
		for _, k := range []string{"API_VARIANT", "MODE"} {
			if v := svc.Environment[k]; v != nil {
				got[svc.Name+" "+k] = *v
			}
		}
	}
	want := map[string]string{"web API_VARIANT": "stable", "web MODE": "web", "web-canary API_VARIANT": "canary", "web-canary MODE": "web"}
	if !maps.Equal(got, want) {
		t.Errorf("environment %v, want %v", got, want)
	}
}

// TestSiteInterpolation: ${SITECTL_SITE} and ${SITECTL_ENV} in an app's compose file
// are the site's name and the environment at each site; $$ stays an escape and other
// variables are left to the deploy's interpolation.
func TestSiteInterpolation(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tag"), 0o755); err != nil {
		t.Fatal(err)
	}
	compose := `services:
  web:
    image: registry.example.org/tag:1.0.0
    environment:
      SITE_ID: ${SITECTL_SITE}
      WHERE: $SITECTL_SITE/$SITECTL_ENV
      LITERAL: $${SITECTL_SITE}
      OTHER: ${TAG_OTHER:-x}
`
	if err := os.WriteFile(filepath.Join(dir, "tag", "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), dir)
	for _, site := range []string{"douala", "cloud"} {
		r, err := stacks.RenderApp(stacks.Input{Topo: topo, Site: topo.Site(site)}, topo.Apps[0])
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for k, v := range stacktest.LoadCompose(t, r).Services[0].Environment {
			got[k] = *v
		}
		want := map[string]string{"SITE_ID": site, "WHERE": site + "/production", "LITERAL": "${SITECTL_SITE}", "OTHER": "x"}
		if !maps.Equal(got, want) {
			t.Errorf("%s: environment %v, want %v", site, got, want)
		}
	}
}
