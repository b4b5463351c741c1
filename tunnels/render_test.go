package tunnels

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
)

func loadTopo(t testing.TB, set ...string) *sites.Topology {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}, Set: set})
	if err != nil {
		t.Fatalf("load sites: %v", err)
	}
	return topo
}

func TestRenderGolden(t *testing.T) {
	variants := map[string][]string{
		"hub-spoke": nil,
		"direct":    {"douala:tunnel.peers=cloud,yaounde"},
	}
	for variant, set := range variants {
		topo := loadTopo(t, set...)
		gws, err := Build(topo)
		if err != nil {
			t.Fatal(err)
		}
		if len(gws) != 3 {
			t.Fatalf("%s: %d gateways, want 3", variant, len(gws))
		}
		for _, g := range gws {
			t.Run(variant+"/"+g.Site, func(t *testing.T) {
				golden.AssertString(t, variant+"-"+g.Site+".swanctl.conf", RenderSwanctl(g))
				sc, err := RenderStrongswan(g)
				if err != nil {
					t.Fatal(err)
				}
				golden.AssertString(t, variant+"-"+g.Site+".strongswan.conf", sc)
			})
		}
	}
}

func TestSelectors(t *testing.T) {
	tests := []struct {
		name     string
		set      []string
		site     string
		link     string
		local    []string
		remote   []string
		numConns int
	}{
		{"spoke reaches other spoke via hub", nil, "douala", "douala-cloud", []string{"10.10.0.0/24"}, []string{"10.30.0.0/24", "10.20.0.0/24"}, 1},
		{"hub carries other spoke to douala", nil, "cloud", "douala-cloud", []string{"10.30.0.0/24", "10.20.0.0/24"}, []string{"10.10.0.0/24"}, 2},
		{"hub carries other spoke to yaounde", nil, "cloud", "yaounde-cloud", []string{"10.30.0.0/24", "10.10.0.0/24"}, []string{"10.20.0.0/24"}, 2},
		{"direct link: hub only its own LAN", []string{"douala:tunnel.peers=cloud,yaounde"}, "cloud", "douala-cloud", []string{"10.30.0.0/24"}, []string{"10.10.0.0/24"}, 2},
		{"direct link: spoke to hub only hub LAN", []string{"douala:tunnel.peers=cloud,yaounde"}, "yaounde", "yaounde-cloud", []string{"10.20.0.0/24"}, []string{"10.30.0.0/24"}, 2},
		{"direct link itself", []string{"douala:tunnel.peers=cloud,yaounde"}, "yaounde", "douala-yaounde", []string{"10.20.0.0/24"}, []string{"10.10.0.0/24"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := BuildSite(loadTopo(t, tc.set...), tc.site)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Conns) != tc.numConns {
				t.Errorf("conns %v, want %d", g.Names(), tc.numConns)
			}
			c := g.Conn(tc.link)
			if c == nil {
				t.Fatalf("no conn %s on %s (have %v)", tc.link, tc.site, g.Names())
			}
			if strings.Join(c.LocalTS, " ") != strings.Join(tc.local, " ") || strings.Join(c.RemoteTS, " ") != strings.Join(tc.remote, " ") {
				t.Errorf("local %v remote %v, want %v %v", c.LocalTS, c.RemoteTS, tc.local, tc.remote)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*sites.Topology)
		want   string
	}{
		{"overlapping selectors", func(tp *sites.Topology) { tp.Site("yaounde").LAN = "10.10.0.128/25" }, "overlaps"},
		{"remote overlaps local", func(tp *sites.Topology) { tp.Site("cloud").LAN = "10.0.0.0/8" }, "overlaps local selector"},
		{"auth mismatch", func(tp *sites.Topology) {
			s := tp.Site("yaounde")
			s.Tunnel.Auth, s.Tunnel.PSK = "psk", sites.SecretRef{Env: "X"}
		}, "set the same tunnel.auth at both ends"},
		{"unknown site", func(tp *sites.Topology) {
			tp.Links = append(tp.Links, sites.Link{A: "douala", B: "kribi", Direct: true})
		}, `site "kribi" is not defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := loadTopo(t)
			tc.mutate(topo)
			_, err := Build(topo)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestSocketPath(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/x/charon.vici":               "/run/x/charon.vici",
		"ssh://ops@10.10.0.1/var/run/charon.vici": "/var/run/charon.vici",
		"tcp://10.0.0.1:4502":                     "",
		"unix://":                                 "",
	} {
		got, err := SocketPath(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("SocketPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestPSKNeverRendered(t *testing.T) {
	topo := loadTopo(t, "tunnel.auth=psk", "tunnel.psk.env=TN_TEST_PSK")
	t.Setenv("TN_TEST_PSK", "s3cr3t-value")
	for _, s := range topo.Sites {
		g, err := BuildSite(topo, s.Name)
		if err != nil {
			t.Fatal(err)
		}
		out := RenderSwanctl(g)
		if strings.Contains(out, "s3cr3t") || strings.Contains(out, "733363723374") {
			t.Fatal("PSK value rendered into swanctl.conf")
		}
		if !strings.Contains(out, "include /etc/swanctl/conf.d/sitectl-psk-") || !strings.Contains(out, "auth = psk") {
			t.Errorf("psk config missing include/auth:\n%s", out)
		}
	}
}
