package kong_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestFailover: /api's upstream holds the local API far above the peers' Kong
// nodes (first peer weighted highest), probes readiness under /api with the via
// header, and marks peer-bound requests; each site serves its peers' failover
// requests on api-peer from its own API only, from their Kong nodes only; the hub's
// /admin never fails over; values.kong.failover orders or turns it off; bad lists
// are refused naming the key.
func TestFailover(t *testing.T) {
	type tg struct {
		target string
		weight int
		tags   []string
	}
	targetsOf := func(d decl, up string) []tg {
		var out []tg
		for _, u := range d.Upstreams {
			if u.Name == up {
				for _, x := range u.Targets {
					out = append(out, tg{x.Target, x.Weight, x.Tags})
				}
			}
		}
		return out
	}
	peersOf := func(ts []tg) []string {
		var out []string
		for _, x := range ts {
			if slices.Contains(x.tags, "failover") {
				out = append(out, x.target)
			}
		}
		return out
	}

	t.Run("spoke fails over to the hub", func(t *testing.T) {
		r := render(t, "production", "douala")
		d := parse(t, r.Files["kong.yml"])
		ts := targetsOf(d, "django-api.local")
		hub, err := kong.Nodes(stacktest.Load(t, "production"), stacktest.Load(t, "production").Site("cloud"))
		if err != nil {
			t.Fatal(err)
		}
		if ts[0].target != "django-api_api:8000" || ts[0].weight != kong.LocalWeight {
			t.Errorf("first target %+v, want the local API at weight %d", ts[0], kong.LocalWeight)
		}
		if got := peersOf(ts); len(got) != len(hub) || !strings.HasPrefix(got[0], hub[0].Address+":") {
			t.Errorf("failover targets %v, want the hub's Kong nodes %v", got, hub)
		}
		y := string(r.Files["kong.yml"])
		for _, want := range []string{"http_path: /api/ready", "X-Sitectl-Via:\n            - douala", "- X-Sitectl-Via:douala", "interval: 2"} {
			if !strings.Contains(y, want) {
				t.Errorf("kong.yml lacks %q", want)
			}
		}
	})

	t.Run("the hub serves the spokes' failover from its own API", func(t *testing.T) {
		topo := stacktest.Load(t, "production")
		d := parse(t, render(t, "production", "cloud").Files["kong.yml"])
		var peer, admin string
		var via []string
		for _, s := range d.Services {
			if s.Name == "api-peer" {
				peer, via = s.Host, s.Routes[0].Headers[kong.ViaHeader]
			}
			if s.Name == "admin" {
				admin = s.Host
			}
		}
		if peer != "django-api.own" || admin != "django-api.own" {
			t.Errorf("api-peer → %q, admin → %q; want both the local-only upstream django-api.own", peer, admin)
		}
		if ts := targetsOf(d, "django-api.own"); len(ts) != 1 || ts[0].target != "django-api_api:8000" {
			t.Errorf("django-api.own targets %+v, want the local API only", ts)
		}
		slices.Sort(via)
		if strings.Join(via, ",") != "douala,yaounde" {
			t.Errorf("api-peer accepts via %v, want douala and yaounde", via)
		}
		y := string(render(t, "production", "cloud").Files["kong.yml"])
		for _, s := range []string{"douala", "yaounde"} {
			nodes, err := kong.Nodes(topo, topo.Site(s))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				if !strings.Contains(y, "- "+n.Address+"\n") {
					t.Errorf("ip-restriction does not allow %s's Kong node %s", s, n.Address)
				}
			}
		}
	})

	t.Run("order from config; [] turns it off", func(t *testing.T) {
		set := []string{"douala:tunnel.peers=cloud,yaounde", "yaounde:tunnel.peers=cloud,douala"}
		d := parse(t, render(t, "production", "douala", append(set, "douala:values.kong.failover=[yaounde, cloud]")...).Files["kong.yml"])
		ts := targetsOf(d, "django-api.local")
		var order []string
		for _, x := range ts[1:] {
			order = append(order, x.tags[len(x.tags)-1]+"="+itoa(x.weight))
		}
		if strings.Join(slices.Compact(order), ",") != "peer-yaounde=2,peer-cloud=1" {
			t.Errorf("failover order %v, want yaounde (2) then cloud (1)", order)
		}
		off := parse(t, render(t, "production", "douala", "douala:values.kong.failover=[]").Files["kong.yml"])
		if got := peersOf(targetsOf(off, "django-api.local")); len(got) != 0 {
			t.Errorf("failover: [] still has peers %v", got)
		}
	})

	t.Run("bad lists are refused", func(t *testing.T) {
		for set, want := range map[string]string{
			"douala:values.kong.failover=[lagos]":    `values.kong.failover names "lagos", which is not a site`,
			"douala:values.kong.failover=[douala]":   "values.kong.failover names the site itself",
			"douala:values.kong.failover=[yaounde]":  "values.kong.failover names yaounde, but no tunnel links the two sites",
			"douala:values.kong.api.health_path=/hz": `values.kong.api.health_path is "/hz"; with failover to cloud it must be under /api/`,
		} {
			topo := stacktest.Load(t, "production", set)
			_, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "douala") {
				t.Errorf("%s: err %v, want %q", set, err, want)
			}
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
