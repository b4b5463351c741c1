package kong_test

import (
	"slices"
	"strings"
	"testing"

	composetypes "github.com/docker/cli/cli/compose/types"
	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

func render(t *testing.T, env, site string, set ...string) stacks.Rendered {
	t.Helper()
	topo := stacktest.Load(t, env, set...)
	s := topo.Site(site)
	r, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: s})
	if err != nil {
		t.Fatalf("render kong for %s/%s: %v", site, env, err)
	}
	return r
}

// TestRenderGolden renders kong for every site and environment: the compose file
// loads with docker/cli's loader and converts, kong.yml validates, goldens match.
func TestRenderGolden(t *testing.T) {
	stacktest.RenderEach(t, kong.Stack{}, func(t *testing.T, in stacks.Input, r stacks.Rendered, cfg *composetypes.Config, d *stacks.Desired) {
		// A spoke verifying the hub's certificate also mounts the CA its health
		// checks trust (lua_ssl_trusted_certificate).
		configs := 1
		if !in.Site.IsHub() {
			configs = 2
			ca, env := string(r.Files[kong.UpstreamCAFile]), "KONG_LUA_SSL_TRUSTED_CERTIFICATE"
			if !strings.Contains(ca, "BEGIN CERTIFICATE") || !strings.Contains(string(r.Compose), env+`: "system,/kong/upstream-ca.pem"`) {
				t.Errorf("spoke %s: want %s and the CA mounted for the hub's health checks", in.Site.Name, env)
			}
		}
		if len(d.Services) != 1 || len(d.Configs) != configs || len(d.Secrets) != 2 {
			t.Errorf("converted: %d services, %d configs, %d secrets; want 1, %d, 2", len(d.Services), len(d.Configs), len(d.Secrets), configs)
		}
		if got := cfg.Services[0].Ports[0].Mode; got != in.Site.Deploy.PublishMode {
			t.Errorf("proxy port mode %q, site says %q", got, in.Site.Deploy.PublishMode)
		}
		if err := kong.Validate(r.Files["kong.yml"]); err != nil {
			t.Fatal(err)
		}
	})
}

type decl struct {
	Services []struct {
		Name     string
		Protocol string
		Host     string
		Port     int
		Routes   []struct {
			Paths   []string
			Headers map[string][]string
		}
		Plugins []struct {
			Name   string
			Config map[string]any
		}
	}
	Upstreams []struct {
		Name    string
		Targets []struct {
			Target string
			Weight int
			Tags   []string
		}
		Healthchecks struct {
			Active struct {
				Type     string
				HTTPPath string `yaml:"http_path"`
			}
			Passive struct{ Type string }
		}
	}
	Plugins []struct{ Name string }
}

func parse(t *testing.T, b []byte) decl {
	t.Helper()
	var d decl
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRouting checks what kong.yml promises per site: /api goes to the site's own
// django-api, /admin to the hub (locally at the hub, over the tunnel to the hub's
// Kong node addresses from a spoke), health checks and plugins are on.
func TestRouting(t *testing.T) {
	topo := stacktest.Load(t, "production")
	hub := topo.HubSite()
	for _, s := range topo.Sites {
		d := parse(t, render(t, "production", s.Name).Files["kong.yml"])
		ups := map[string][]string{}
		for _, u := range d.Upstreams {
			for _, tg := range u.Targets {
				ups[u.Name] = append(ups[u.Name], tg.Target)
			}
			if u.Healthchecks.Active.Type == "" || u.Healthchecks.Passive.Type == "" || u.Healthchecks.Active.HTTPPath == "" {
				t.Errorf("%s: upstream %s lacks active or passive health checks", s.Name, u.Name)
			}
		}
		svcs := map[string]string{}
		for _, sv := range d.Services {
			if len(sv.Routes[0].Headers) > 0 {
				continue // api-peer: failover requests from peers (TestFailover)
			}
			svcs[sv.Routes[0].Paths[0]] = sv.Host
		}
		if got := ups[svcs["/api"]]; len(got) < 1 || got[0] != "django-api_api:8000" {
			t.Errorf("%s: /api targets %v, want the site's own django-api first", s.Name, got)
		}
		admin := ups[svcs["/admin"]]
		if s.IsHub() {
			if got := ups[svcs["/admin"]]; len(got) != 1 || got[0] != "django-api_api:8000" {
				t.Errorf("hub %s: /admin should go to its local django-api only, goes to %s %v", s.Name, svcs["/admin"], got)
			}
		} else {
			nodes, err := kong.Nodes(topo, hub)
			if err != nil {
				t.Fatal(err)
			}
			if len(admin) != len(nodes) {
				t.Fatalf("%s: /admin targets %v, want the hub's %d Kong nodes", s.Name, admin, len(nodes))
			}
			for i, n := range nodes {
				if !strings.HasPrefix(admin[i], n.Address+":") {
					t.Errorf("%s: /admin target %s is not the hub node %s", s.Name, admin[i], n.Address)
				}
			}
		}
		var plugins []string
		for _, p := range d.Plugins {
			plugins = append(plugins, p.Name)
		}
		if strings.Join(plugins, ",") != "correlation-id,prometheus" {
			t.Errorf("%s: global plugins %v", s.Name, plugins)
		}
	}
}

// TestCanary: values.kong.canary splits /api by weight, and with dnsrr (one address
// per task) the weights are scaled by replica counts so requests still split as set.
func TestCanary(t *testing.T) {
	for _, tc := range []struct {
		name             string
		env              string
		set              []string
		stableW, canaryW int
		stableN, canaryN int // addresses each target resolves to
		share            float64
	}{
		{"vip-90-10", "production", []string{"douala:values.kong.canary.enabled=true"}, 90, 10, 1, 1, 0.10},
		{"vip-75-25", "production", []string{"douala:values.kong.canary.enabled=true", "douala:values.kong.canary.weight=25"}, 75, 25, 1, 1, 0.25},
		// dnsrr: django-api 2 tasks, canary 1: 90 per stable task (x2) against 20 for
		// the one canary task = 180:20 = 90:10.
		{"dnsrr-90-10", "lab", []string{"douala:values.kong.canary.enabled=true", "douala:values.django-api.replicas=2"}, 90, 20, 2, 1, 0.10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.env, "douala", tc.set...)
			if err := kong.Validate(r.Files["kong.yml"]); err != nil {
				t.Fatal(err)
			}
			d := parse(t, r.Files["kong.yml"])
			var w []int
			for _, u := range d.Upstreams {
				if u.Name == "django-api.local" {
					for _, tg := range u.Targets {
						if !slices.Contains(tg.Tags, "failover") {
							w = append(w, tg.Weight/(kong.LocalWeight/100)) // scaled above the peers
						}
					}
				}
			}
			if len(w) != 2 || w[0] != tc.stableW || w[1] != tc.canaryW {
				t.Fatalf("weights %v, want [%d %d]", w, tc.stableW, tc.canaryW)
			}
			share := float64(w[1]*tc.canaryN) / float64(w[0]*tc.stableN+w[1]*tc.canaryN)
			if share < tc.share-1e-9 || share > tc.share+1e-9 {
				t.Errorf("canary share %.3f, want %.2f", share, tc.share)
			}
			golden.Assert(t, "canary/"+tc.name+".kong.yml", r.Files["kong.yml"])
		})
	}
	// A weight outside 1..99 is refused with the key named.
	topo := stacktest.Load(t, "production", "douala:values.kong.canary.enabled=true", "douala:values.kong.canary.weight=0")
	_, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err == nil || !strings.Contains(err.Error(), "values.kong.canary.weight") {
		t.Fatalf("weight 0: error %v, want one naming values.kong.canary.weight", err)
	}
}

// TestValidateRejects: the validator catches what a hand edit or a generator bug
// would break: unknown fields, bad enums, dangling references, duplicates.
func TestValidateRejects(t *testing.T) {
	good := render(t, "production", "douala").Files["kong.yml"]
	if err := kong.Validate(good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown field", "    retries: 2\n", "    retries: 2\n    retry: 3\n", "additional properties"},
		{"bad algorithm", "algorithm: round-robin", "algorithm: fastest", "algorithm"},
		{"dangling upstream", "    host: admin.hub\n", "    host: admin.hubb\n", "admin.hub"},
		{"bad weight", "weight: 100", "weight: 70000", "weight"},
		{"format version", `_format_version: "3.0"`, `_format_version: "1.1"`, "_format_version"},
		{"duplicate route path", "          - /admin\n", "          - /api\n", "both match"},
		{"unknown plugin", "name: correlation-id", "name: correlation-idd", "not a bundled"},
		{"bad redirect", "https_redirect_status_code: 308", "https_redirect_status_code: 200", "https_redirect_status_code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.from, tc.to, 1)
			if bad == string(good) {
				t.Fatalf("mutation %q not applied", tc.from)
			}
			err := kong.Validate([]byte(bad))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestMissingSecret: a site that does not name the TLS secret gets one clear error.
func TestMissingSecret(t *testing.T) {
	topo := stacktest.Load(t, "dev", "douala:values.kong.tls.cert=no-such-cert")
	_, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err == nil || !strings.Contains(err.Error(), `"no-such-cert"`) || !strings.Contains(err.Error(), "secrets.no-such-cert") {
		t.Fatalf("error %v, want one naming the secret and the fix", err)
	}
}

// TestBadValues: a wrong value is refused with the key that holds it.
func TestBadValues(t *testing.T) {
	for set, key := range map[string]string{
		"douala:values.kong.health_interval=soon": "values.kong.health_interval",
		"douala:values.kong.https_port=70000":     "values.kong.https_port",
		"douala:values.kong.http_port=eighty":     "values.kong.http_port",
		"douala:values.kong.constraints=x":        "values.kong.constraints",
		"cloud:stacks=postgres,django-api":        "hub cloud does not run the kong stack",
	} {
		topo := stacktest.Load(t, "dev", set)
		_, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v, want one naming %s", set, err, key)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	topo := stacktest.Load(b, "production")
	in := stacks.Input{Topo: topo, Site: topo.Site("douala")}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (kong.Stack{}).Render(in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApps: each fixture app's routes are in kong.yml at the sites that serve them —
// a local route where the site runs the app (to its own service, health-checked at
// the readiness path), a hub route at the hub locally and at a spoke forwarded to
// the hub's Kong — and kong.yml still validates. Goldens per site.
func TestApps(t *testing.T) {
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), stacktest.FixtureApps(t))
	for _, s := range topo.Sites {
		r, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: s})
		if err != nil {
			t.Fatal(err)
		}
		golden.Assert(t, "apps/kong-"+s.Name+".yml", r.Files["kong.yml"])
		d := parse(t, r.Files["kong.yml"])
		hosts := map[string]string{}
		for _, sv := range d.Services {
			for _, rt := range sv.Routes {
				hosts[rt.Paths[0]] = sv.Name + " " + sv.Protocol + "://" + sv.Host
			}
		}
		if got := hosts["/hello"]; got != "app-hello http://hello.app" {
			t.Errorf("%s: /hello goes to %q, want the site's own hello", s.Name, got)
		}
		// A forwarded route has its own upstream of the hub's Kong nodes, health
		// checked at the app's route there (not at /admin: the app's health is its
		// own). hello's readiness (/readyz) is under no forwarded route, so the
		// route's path is probed.
		want := "app-hello-hub https://hello.hub"
		if s.IsHub() {
			want = "app-hello http://hello.app"
		}
		if got := hosts["/hello-admin"]; got != want {
			t.Errorf("%s: /hello-admin goes to %q, want %q", s.Name, got, want)
		}
		var adminTargets, helloHubTargets []string
		for _, u := range d.Upstreams {
			for _, tg := range u.Targets {
				switch u.Name {
				case "admin.hub":
					adminTargets = append(adminTargets, tg.Target)
				case "hello.hub":
					helloHubTargets = append(helloHubTargets, tg.Target)
				}
			}
			if u.Name == "hello.hub" && u.Healthchecks.Active.HTTPPath != "/hello-admin" {
				t.Errorf("%s: upstream hello.hub probes %q, want /hello-admin", s.Name, u.Healthchecks.Active.HTTPPath)
			}
		}
		if !s.IsHub() && (len(helloHubTargets) == 0 || strings.Join(helloHubTargets, ",") != strings.Join(adminTargets, ",")) {
			t.Errorf("%s: hello.hub targets %v, want the hub's Kong nodes %v", s.Name, helloHubTargets, adminTargets)
		}
		for _, u := range d.Upstreams {
			if u.Name == "hello.app" && (len(u.Targets) != 1 || u.Targets[0].Target != "hello_web:8080" || u.Healthchecks.Active.HTTPPath != "/readyz") {
				t.Errorf("%s: upstream hello.app: %+v", s.Name, u)
			}
		}
	}
}
