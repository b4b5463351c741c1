package apps_test

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// labCurl is the lab's health check of the API (the built-in's values.django-api
// healthcheck: curl, health_path: /health, health_retry 3s) written as the app's
// values.django-api.healthcheck.test.
var labCurl = []any{"CMD", "curl", "-fsS", "-o", "/dev/null", "--retry", "3", "--retry-delay", "1",
	"--retry-connrefused", "--retry-max-time", "3", "http://127.0.0.1:8000/health"}

// setValue sets values.<stack>.<key> at site, on a copy of the site's map (the
// layers may share it between sites).
func setValue(topo *sites.Topology, site, stack, key string, v any) {
	s := topo.Site(site)
	m := maps.Clone(s.Values[stack])
	if m == nil {
		m = map[string]any{}
	}
	m[key] = v
	s.Values[stack] = m
}

// TestAPIAsAppHealthcheckPerSite switches the API's health check at one site, as
// the lab's environment overlay does (values.django-api: healthcheck: curl,
// health_path: /health for the built-in), through the app's
// values.django-api.healthcheck: the swarm health check is the built-in's at that
// site and stays the compose file's elsewhere.
func TestAPIAsAppHealthcheckPerSite(t *testing.T) {
	t.Setenv("SITECTL_PG_APP_PASSWORD", "app-role-pw")
	t.Setenv("SITECTL_DJANGO_SECRET_KEY", "django-key")
	builtin := stacktest.Load(t, "production", "douala:values.django-api.healthcheck=curl", "douala:values.django-api.health_path=/health")
	topo, list := apiAppTopology(t, func(topo *sites.Topology) {
		setValue(topo, "douala", "django-api", "healthcheck", map[string]any{"test": labCurl})
	})
	for _, site := range []string{"douala", "yaounde"} {
		want := convert(t, stacks.Input{Topo: builtin, Site: builtin.Site(site)}, nil)
		got := convert(t, stacks.Input{Topo: topo, Site: topo.Site(site)}, list[0])
		w, g := want.Services[0].Spec.TaskTemplate.ContainerSpec.Healthcheck, got.Services[0].Spec.TaskTemplate.ContainerSpec.Healthcheck
		if !reflect.DeepEqual(*g, *w) {
			t.Errorf("%s: health check: app %+v, built-in %+v", site, *g, *w)
		}
		curl := g.Test[1] == "curl"
		if curl != (site == "douala") {
			t.Errorf("%s: health check %v: want curl at douala only", site, g.Test)
		}
	}
	if hc := list[0].Sites["douala"].Healthcheck; len(hc) != 1 || hc["test"] == nil {
		t.Errorf("douala's healthcheck keys %v, want test only (the others are the compose file's)", hc)
	}
}

// kongFile is what the comparisons read of a kong.yml.
type kongFile struct {
	Services []struct {
		Name           string
		Protocol       string
		Host           string
		Port           int
		TLSVerify      *bool    `yaml:"tls_verify"`
		CACertificates []string `yaml:"ca_certificates"`
		Routes         []struct {
			Paths   []string
			Headers map[string][]string
		}
		Plugins []struct {
			Name   string
			Config map[string]any
		}
	}
	Upstreams []struct {
		Name         string
		Healthchecks struct {
			Active struct {
				Type     string
				HTTPPath string `yaml:"http_path"`
				Headers  map[string][]string
				Healthy  struct{ Interval int }
			}
		}
		Targets []struct {
			Target string
			Weight int
		}
	}
}

// kongRoute is how a kong.yml serves path: the service (to clients, or to the
// peers' failover requests when peer), its upstream's targets (address=weight),
// probe and rate limit.
type kongRoute struct {
	service, protocol, host string
	port                    int
	tlsVerify               bool
	caCerts                 int
	targets                 []string
	probe, probeType        string
	probeVia                []string
	interval                int
	perMinute               any
	allow                   any
}

func readKong(t *testing.T, topo *sites.Topology, site string) kongFile {
	t.Helper()
	b, err := kong.Config(topo, topo.Site(site))
	if err != nil {
		t.Fatal(err)
	}
	var k kongFile
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k kongFile) route(t *testing.T, path string, peer bool) kongRoute {
	t.Helper()
	for _, s := range k.Services {
		for _, r := range s.Routes {
			if !slices.Contains(r.Paths, path) || (len(r.Headers) > 0) != peer {
				continue
			}
			out := kongRoute{service: s.Name, protocol: s.Protocol, host: s.Host, port: s.Port, tlsVerify: s.TLSVerify != nil && *s.TLSVerify, caCerts: len(s.CACertificates)}
			for _, p := range s.Plugins {
				switch p.Name {
				case "rate-limiting":
					out.perMinute = p.Config["minute"]
				case "ip-restriction":
					out.allow = p.Config["allow"]
				}
			}
			for _, u := range k.Upstreams {
				if u.Name != s.Host {
					continue
				}
				a := u.Healthchecks.Active
				out.probe, out.probeType, out.probeVia, out.interval = a.HTTPPath, a.Type, a.Headers["X-Sitectl-Via"], a.Healthy.Interval
				for _, tg := range u.Targets {
					out.targets = append(out.targets, tg.Target+"="+strconv.Itoa(tg.Weight))
				}
			}
			return out
		}
	}
	t.Fatalf("no service routes %s (peer %v)", path, peer)
	return kongRoute{}
}

// TestAPIAsAppKong renders kong.yml with the Django API as the app (its /api
// failing over to peers, /admin at the hub) and with the built-in stack, at a
// spoke and at the hub: Kong routes /api, the peers' failover requests and /admin
// to the same targets with the same weights, probes, TLS to the hub and rate limit
// on /api. The differences (the names of services and upstreams, /admin's rate
// limit and probe) are listed in docs/apps.md.
func TestAPIAsAppKong(t *testing.T) {
	builtin := stacktest.Load(t, "production")
	topo, list := apiAppTopology(t, nil)
	for _, site := range []string{"douala", "cloud"} {
		want, got := readKong(t, builtin, site), readKong(t, topo, site)
		w, g := want.route(t, "/api", false), got.route(t, "/api", false)
		if g.service != "app-django-api-failover" || g.host != "django-api.failover" {
			t.Errorf("%s: /api at service %s (%s), want app-django-api-failover", site, g.service, g.host)
		}
		w.service, w.host = g.service, g.host
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: /api:\napp      %+v\nbuilt-in %+v", site, g, w)
		}
		w, g = want.route(t, "/api", true), got.route(t, "/api", true)
		w.service, w.host = g.service, g.host
		if !reflect.DeepEqual(g, w) || g.allow == nil {
			t.Errorf("%s: /api from the peers:\napp      %+v\nbuilt-in %+v", site, g, w)
		}
		w, g = want.route(t, "/admin", false), got.route(t, "/admin", false)
		if g.perMinute != list[0].RateLimitAt(site) {
			t.Errorf("%s: /admin rate limit %v, want the app's %d", site, g.perMinute, list[0].RateLimitAt(site))
		}
		if site == "cloud" && (g.service != "app-django-api" || g.host != "django-api.app") {
			t.Errorf("cloud: /admin at %s (%s), want the hub's own app-django-api", g.service, g.host)
		}
		if site == "douala" && (g.service != "app-django-api-hub" || g.host != "django-api.hub") {
			t.Errorf("douala: /admin at %s (%s), want app-django-api-hub", g.service, g.host)
		}
		for _, c := range [][3]any{{"protocol", g.protocol, w.protocol}, {"port", g.port, w.port}, {"tls_verify", g.tlsVerify, w.tlsVerify},
			{"ca_certificates", g.caCerts, w.caCerts}, {"targets", g.targets, w.targets}, {"probe type", g.probeType, w.probeType}} {
			if !reflect.DeepEqual(c[1], c[2]) {
				t.Errorf("%s: /admin %s: app %v, built-in %v", site, c[0], c[1], c[2])
			}
		}
	}
}

// TestAPIAsAppRateLimitPerSite: the sites' values.django-api.rate_limit sets the
// limit of the app's routes at one site (as values.kong.rate_limit.api_per_minute
// does for the built-in /api), the others keep x-sitectl.rate_limit.
func TestAPIAsAppRateLimitPerSite(t *testing.T) {
	topo, list := apiAppTopology(t, func(topo *sites.Topology) {
		setValue(topo, "douala", "django-api", "rate_limit", 100)
	})
	for site, want := range map[string]int{"douala": 100, "yaounde": 600, "cloud": 600} {
		k := readKong(t, topo, site)
		for _, path := range []string{"/api", "/admin"} {
			if got := k.route(t, path, false).perMinute; got != want {
				t.Errorf("%s: %s rate limit %v, want %d", site, path, got, want)
			}
		}
		if got := list[0].RateLimitAt(site); got != want {
			t.Errorf("%s: RateLimitAt %d, want %d", site, got, want)
		}
	}
}
