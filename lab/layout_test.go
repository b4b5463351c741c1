package lab_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/sites"
)

// repoTopo loads the repository's site files (no overlay), as lab up does.
func repoTopo(t *testing.T) *sites.Topology {
	t.Helper()
	topo, err := lab.LoadTopology(filepath.Join("..", "sites"))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestLayoutGolden(t *testing.T) {
	l, err := lab.NewLayout(repoTopo(t), nil, "sl", "/var/lib/sitectl/lab-sl")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "layout.golden.json", append(b, '\n'))

	// What the rest of sitectl relies on: douala has its app and db nodes, each node
	// has its own socket and bridge range, the WAN has a router per WAN subnet.
	d := l.Site("douala")
	if d == nil || len(d.Nodes) != 2 || d.Nodes[0].Name != "douala-app1" || d.Nodes[1].Name != "douala-db1" {
		t.Fatalf("douala nodes = %+v, want douala-app1 and douala-db1", d)
	}
	seen := map[string]bool{}
	for _, s := range l.Sites {
		for _, n := range s.Nodes {
			for _, v := range []string{n.Socket, n.Bip, n.Pool, n.NS} {
				if seen[v] {
					t.Errorf("%s is used twice", v)
				}
				seen[v] = true
			}
			if len(n.NS) > 0 && !strings.HasPrefix(n.NS, "sl-") {
				t.Errorf("namespace %s lacks the prefix", n.NS)
			}
		}
	}
	if len(l.WANRouters) != 2 {
		t.Errorf("WAN routers = %v, want one for 198.51.100.0/24 and one for 203.0.113.0/24", l.WANRouters)
	}
}

func TestLayoutRejectsBadInput(t *testing.T) {
	cases := []struct {
		name   string
		prefix string
		sites  []string
		mutate func(*sites.Topology)
		want   string
	}{
		{name: "prefix", prefix: "Bad-Prefix", want: "lab prefix"},
		{name: "unknown site", prefix: "sl", sites: []string{"paris"}, want: `no site "paris"`},
		{name: "node outside LAN", prefix: "sl", mutate: func(tp *sites.Topology) {
			tp.Site("douala").Nodes[1].Address = "10.99.0.5"
		}, want: "must be an address inside lan 10.10.0.0/24"},
		{name: "same WAN address", prefix: "sl", mutate: func(tp *sites.Topology) {
			tp.Site("yaounde").Gateway.WANAddress = tp.Site("douala").Gateway.WANAddress
		}, want: "used by another site"},
		{name: "node on gateway address", prefix: "sl", mutate: func(tp *sites.Topology) {
			tp.Site("cloud").Nodes[0].Address = "10.30.0.1"
		}, want: "gateway's LAN address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp := repoTopo(t)
			if c.mutate != nil {
				c.mutate(tp)
			}
			_, err := lab.NewLayout(tp, c.sites, c.prefix, "/tmp/x")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

// TestOverlayAPIValues: the lab's values.django-api are the built-in stack's keys
// while a site runs it, and the app's health check once none does.
func TestOverlayAPIValues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sites")
	if err := labtest.CopyConfig(filepath.Join("..", "sites"), dir); err != nil {
		t.Fatal(err)
	}
	topo, err := lab.LoadTopology(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lab.NewLayout(topo, nil, "sl", "/var/lib/sitectl/lab-sl")
	if err != nil {
		t.Fatal(err)
	}
	api := func() any {
		b, err := lab.Overlay(topo, l)
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			All struct{ Values map[string]any } `yaml:"all"`
		}
		if err := yaml.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		return o.All.Values["django-api"]
	}
	if got, want := api(), map[string]any{"healthcheck": "curl", "health_path": "/health"}; !reflect.DeepEqual(got, want) {
		t.Errorf("with the built-in: values.django-api %v, want %v", got, want)
	}
	for _, s := range topo.Sites {
		s.Stacks = slices.DeleteFunc(slices.Clone(s.Stacks), func(n string) bool { return n == "django-api" })
	}
	if got, want := api(), map[string]any{"healthcheck": map[string]any{"test": lab.APIHealthcheck}}; !reflect.DeepEqual(got, want) {
		t.Errorf("without the built-in: values.django-api %v, want %v", got, want)
	}
}

// The overlay lab up writes is golden, and the lab environment it makes validates.
func TestOverlayGoldenAndValid(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sites")
	if err := labtest.CopyConfig(filepath.Join("..", "sites"), dir); err != nil {
		t.Fatal(err)
	}
	topo, err := lab.LoadTopology(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lab.NewLayout(topo, nil, "sl", "/var/lib/sitectl/lab-sl")
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.Overlay(topo, l)
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "lab.yaml.golden", b)
	if strings.Contains(string(b), "password:") && !strings.Contains(string(b), "file: /var/lib/sitectl/lab-sl/secrets/postgres-password") {
		t.Error("postgres password is not a file reference under the state dir")
	}
	if err := os.WriteFile(lab.OverlayPath(dir), b, 0o644); err != nil {
		t.Fatal(err)
	}
	lt, err := sites.Load(sites.Options{Dir: dir, Env: lab.EnvName, Environ: []string{}})
	if err != nil {
		t.Fatalf("the lab environment does not validate: %v", err)
	}
	d := lt.Site("douala")
	checks := map[string][2]string{
		"engine.host":                 {d.Engine.Host, "unix:///var/lib/sitectl/lab-sl/nodes/douala-app1/docker.sock"},
		"nodes[1].engine":             {d.Nodes[1].Engine, "unix:///var/lib/sitectl/lab-sl/nodes/douala-db1/docker.sock"},
		"deploy.endpoint_mode":        {d.Deploy.EndpointMode, "dnsrr"},
		"deploy.publish_mode":         {d.Deploy.PublishMode, "host"},
		"deploy.encryption_exception": {d.Deploy.EncryptionException, lab.EncryptionException},
		"tunnel.ipsec":                {d.Tunnel.IPsec, "libipsec"},
		"gateway.vici":                {d.Gateway.Vici, "unix:///var/lib/sitectl/lab-sl/sites/douala/charon.vici"},
		"lab.namespace":               {d.Lab.Namespace, "sl-douala-gw"},
		"images.postgres":             {d.Images["postgres"], "sitectl-lab/postgres:15"},
		"postgres.host":               {d.Postgres.Host, "10.10.0.12"},
	}
	for k, v := range checks {
		if v[0] != v[1] {
			t.Errorf("douala %s = %q, want %q", k, v[0], v[1])
		}
	}
	for name, n := range d.Networks {
		if n.Encrypted {
			t.Errorf("network %s is encrypted in the lab", name)
		}
	}
	if lt.Site("cloud").Engine.TLSVerify || lt.Site("cloud").Engine.CACert != "" {
		t.Error("cloud keeps its production TLS settings against a unix socket")
	}
}
