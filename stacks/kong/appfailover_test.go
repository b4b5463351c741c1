package kong_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// ordersApp is a fixture app (no Go code names it) whose /orders route fails over
// to peer sites; /orders-static does not.
const ordersApp = `services:
  web:
    image: registry.example.org/orders:1.0.0
x-sitectl:
  port: 8080
  sites: %s
  health: {liveness: /healthz, readiness: /orders/ready}
  rate_limit: 300
  routes:
    - path: /orders
      failover: peers
    - path: /orders-static
`

func ordersKong(t *testing.T, sitesOf, site string, set ...string) decl {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "orders"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "orders", "compose.yaml"), []byte(strings.Replace(ordersApp, "%s", sitesOf, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := stacktest.WithApps(t, stacktest.Load(t, "production", set...), dir)
	r, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site(site)})
	if err != nil {
		t.Fatalf("render kong at %s: %v", site, err)
	}
	if sitesOf == "all" && len(set) == 0 {
		golden.Assert(t, "appfailover/kong-"+site+".yml", r.Files["kong.yml"])
	}
	return parse(t, r.Files["kong.yml"])
}

// TestAppFailover: an app route with failover: peers fails over like /api: at a
// spoke its upstream holds the local app far above the hub's Kong nodes and probes
// readiness with the via header; the hub serves the spokes' failover requests from
// its own app only; a route without failover stays on the app's own upstream; a
// peer not running the app is no target; values.kong.failover: [] turns it off.
func TestAppFailover(t *testing.T) {
	topo := stacktest.Load(t, "production")
	hubNodes, err := kong.Nodes(topo, topo.Site("cloud"))
	if err != nil {
		t.Fatal(err)
	}
	// route is the service (and its host) of the route for path that clients use
	// (no via header).
	route := func(d decl, path string) (svc, host string) {
		for _, s := range d.Services {
			for _, r := range s.Routes {
				if r.Paths[0] == path && r.Headers == nil {
					return s.Name, s.Host
				}
			}
		}
		return "", ""
	}
	up := func(d decl, name string) (targets []string, path string) {
		for _, u := range d.Upstreams {
			if u.Name == name {
				for _, x := range u.Targets {
					targets = append(targets, x.Target+"="+itoa(x.Weight))
				}
				return targets, u.Healthchecks.Active.HTTPPath
			}
		}
		return nil, ""
	}

	t.Run("spoke fails over to the hub", func(t *testing.T) {
		d := ordersKong(t, "all", "douala")
		if svc, host := route(d, "/orders"); svc != "app-orders-failover" || host != "orders.failover" {
			t.Errorf("/orders → %s %s, want app-orders-failover orders.failover", svc, host)
		}
		if svc, host := route(d, "/orders-static"); svc != "app-orders" || host != "orders.app" {
			t.Errorf("/orders-static → %s %s, want app-orders orders.app (no failover)", svc, host)
		}
		ts, probe := up(d, "orders.failover")
		if len(ts) != 1+len(hubNodes) || ts[0] != "orders_web:8080="+itoa(kong.LocalWeight) || probe != "/orders/ready" {
			t.Fatalf("orders.failover targets %v probing %s; want orders_web:8080 at %d, then the hub's %d Kong nodes, probing /orders/ready", ts, probe, kong.LocalWeight, len(hubNodes))
		}
		if !strings.HasPrefix(ts[1], hubNodes[0].Address+":") {
			t.Errorf("peer target %s, want the hub's Kong node %s", ts[1], hubNodes[0].Address)
		}
		if ts, _ := up(d, "orders.app"); len(ts) != 1 || ts[0] != "orders_web:8080=100" {
			t.Errorf("orders.app targets %v, want the local app only", ts)
		}
	})

	t.Run("the hub serves the spokes from its own app", func(t *testing.T) {
		d := ordersKong(t, "all", "cloud")
		var svc, host string
		var via []string
		for _, s := range d.Services {
			if s.Name == "app-orders-peer" {
				svc, host, via = s.Name, s.Host, s.Routes[0].Headers[kong.ViaHeader]
			}
		}
		slices.Sort(via)
		if host != "orders.app" || strings.Join(via, ",") != "douala,yaounde" {
			t.Errorf("%s → %s via %v; want orders.app from douala and yaounde", svc, host, via)
		}
	})

	t.Run("rate limit on the client-facing services only", func(t *testing.T) {
		for _, site := range []string{"douala", "cloud"} {
			d := ordersKong(t, "all", site)
			limits := map[string]any{}
			for _, s := range d.Services {
				for _, p := range s.Plugins {
					if p.Name == "rate-limiting" && strings.HasPrefix(s.Name, "app-orders") {
						limits[s.Name] = p.Config["minute"]
					}
				}
			}
			want := map[string]any{"app-orders": 300, "app-orders-failover": 300}
			if !maps.Equal(limits, want) {
				t.Errorf("%s: rate limits %v, want %v (none on app-orders-peer)", site, limits, want)
			}
		}
	})

	t.Run("a peer not running the app is no target", func(t *testing.T) {
		d := ordersKong(t, "[douala, yaounde]", "douala")
		if svc, _ := route(d, "/orders"); svc != "app-orders" {
			t.Errorf("/orders → %s; the hub does not run orders, want no failover (app-orders)", svc)
		}
		for _, u := range d.Upstreams {
			if u.Name == "orders.failover" {
				t.Errorf("upstream orders.failover exists with no peer running the app")
			}
		}
	})

	t.Run("values.kong.failover: [] turns it off", func(t *testing.T) {
		d := ordersKong(t, "all", "douala", "douala:values.kong.failover=[]")
		if svc, _ := route(d, "/orders"); svc != "app-orders" {
			t.Errorf("/orders → %s, want app-orders", svc)
		}
		hub := ordersKong(t, "all", "cloud", "douala:values.kong.failover=[]")
		for _, s := range hub.Services {
			if s.Name == "app-orders-peer" && slices.Contains(s.Routes[0].Headers[kong.ViaHeader], "douala") {
				t.Errorf("the hub still accepts douala's failover requests: %v", s.Routes[0].Headers)
			}
		}
	})
}
