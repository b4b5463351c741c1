package stacks_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

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

// TestSiteHealthcheck: the healthcheck keys of a site and an environment are
// written over the compose file's key by key; disable: true drops its test (compose
// refuses both), and the canary gets the site's check too.
func TestSiteHealthcheck(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	compose := `services:
  web:
    image: registry.example.org/shop:1.0.0
    healthcheck:
      test: [CMD, wget, -qO-, http://127.0.0.1:8080/]
      interval: 5s
      retries: 3
x-sitectl:
  port: 8080
  routes: [{path: /shop}]
  canary: {image: registry.example.org/shop:1.1.0, weight: 10}
  site:
    douala: {healthcheck: {disable: true}}
    yaounde: {healthcheck: {test: [CMD, curl, -fsS, http://127.0.0.1:8080/healthz]}}
  env:
    production: {healthcheck: {timeout: 2s}}
`
	if err := os.WriteFile(filepath.Join(dir, "shop", "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), dir)
	for site, want := range map[string]string{
		"douala":  "test=[] disable=true interval=5s retries=3 timeout=2s",
		"yaounde": "test=[CMD curl -fsS http://127.0.0.1:8080/healthz] disable=false interval=5s retries=3 timeout=2s",
		"cloud":   "test=[CMD wget -qO- http://127.0.0.1:8080/] disable=false interval=5s retries=3 timeout=2s",
	} {
		r, err := stacks.RenderApp(stacks.Input{Topo: topo, Site: topo.Site(site)}, topo.Apps[0])
		if err != nil {
			t.Fatal(err)
		}
		services := stacktest.LoadCompose(t, r).Services
		if len(services) != 2 {
			t.Fatalf("%s: %d services, want web and its canary", site, len(services))
		}
		for _, svc := range services {
			hc := svc.HealthCheck
			if hc == nil || hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Fatalf("%s: %s: healthcheck %+v", site, svc.Name, hc)
			}
			got := fmt.Sprintf("test=%v disable=%v interval=%s retries=%d timeout=%s", []string(hc.Test), hc.Disable,
				time.Duration(*hc.Interval), *hc.Retries, time.Duration(*hc.Timeout))
			if got != want {
				t.Errorf("%s: %s: %s, want %s", site, svc.Name, got, want)
			}
		}
	}
}
