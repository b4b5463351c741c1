package mongo_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/mongo"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestRenderGolden renders mongo for every site and environment: docker/cli's loader
// and the deploy engine's conversion accept it, and it matches its golden file.
func TestRenderGolden(t *testing.T) {
	for _, env := range stacktest.Envs {
		topo := stacktest.Load(t, env)
		for _, s := range topo.Sites {
			t.Run(s.Name+"/"+env, func(t *testing.T) {
				in := stacks.Input{Topo: topo, Site: s}
				r, err := mongo.Stack{}.Render(in)
				if err != nil {
					t.Fatal(err)
				}
				cfg := stacktest.LoadCompose(t, r)
				d := stacktest.Convert(t, in, r)
				// the keyfile, and the root user's password when mongo.user is set
				wantSecrets := 1
				if s.Mongo.User != "" {
					wantSecrets = 2
				}
				if len(d.Services) != len(s.Mongo.Members) || len(d.Secrets) != wantSecrets {
					t.Errorf("converted: %d services, %d secrets; want %d, %d", len(d.Services), len(d.Secrets), len(s.Mongo.Members), wantSecrets)
				}
				for _, svc := range cfg.Services {
					if svc.Deploy.EndpointMode != s.Deploy.EndpointMode {
						t.Errorf("%s: endpoint_mode %q, site says %q", svc.Name, svc.Deploy.EndpointMode, s.Deploy.EndpointMode)
					}
					if len(svc.Networks) != 1 || svc.Networks["data"] == nil && !hasKey(svc.Networks, "data") {
						t.Errorf("%s: networks %v, want data only", svc.Name, svc.Networks)
					}
					for _, p := range svc.Ports {
						if p.Mode != "host" {
							t.Errorf("%s: port %d published in %s mode; only host mode keeps it off the routing mesh", svc.Name, p.Target, p.Mode)
						}
					}
					if !slices.Contains(svc.Command, "--keyFile") {
						t.Errorf("%s: mongod runs without --keyFile", svc.Name)
					}
					if !strings.HasPrefix(svc.Deploy.Placement.Constraints[0], "node.hostname == ") {
						t.Errorf("%s: constraints %v, want the member's node", svc.Name, svc.Deploy.Placement.Constraints)
					}
				}
				golden.Assert(t, env+"/"+s.Name+"/compose.yaml", r.Compose)
			})
		}
	}
}

func hasKey[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

// TestDBNodePlacement: douala's member lives on its db node.
func TestDBNodePlacement(t *testing.T) {
	topo := stacktest.Load(t, "production")
	r, err := mongo.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := stacktest.LoadCompose(t, r)
	got := cfg.Services[0].Deploy.Placement.Constraints
	if !slices.Equal(got, []string{"node.hostname == douala-db1", "node.labels.role == db"}) {
		t.Errorf("douala constraints %v", got)
	}
}

func TestTLSAndErrors(t *testing.T) {
	topo := stacktest.Load(t, "production", "values.mongo.tls_mode=requireTLS",
		"secrets.mongo-tls-pem.env=SITECTL_MONGO_TLS_PEM", "secrets.mongo-tls-ca.env=SITECTL_MONGO_TLS_CA")
	in := stacks.Input{Topo: topo, Site: topo.Site("cloud")}
	r, err := mongo.Stack{}.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stacktest.LoadCompose(t, r)
	d := stacktest.Convert(t, in, r)
	// keyfile, root password (the example config sets mongo.user), certificate, CA
	if len(d.Secrets) != 4 || !slices.Contains(cfg.Services[0].Command, "requireTLS") {
		t.Errorf("TLS: %d secrets, command %v", len(d.Secrets), cfg.Services[0].Command)
	}
	golden.Assert(t, "tls/cloud/compose.yaml", r.Compose)

	// mongo.user: the image creates the user from the password secret.
	topo = stacktest.Load(t, "production", "mongo.user=sitectl", "mongo.password.env=SITECTL_MONGO_PASSWORD", "secrets.mongo-password.env=SITECTL_MONGO_PASSWORD")
	in = stacks.Input{Topo: topo, Site: topo.Site("douala")}
	r, err = mongo.Stack{}.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg = stacktest.LoadCompose(t, r)
	d = stacktest.Convert(t, in, r)
	if len(d.Secrets) != 2 || cfg.Services[0].Environment["MONGO_INITDB_ROOT_USERNAME"] == nil {
		t.Errorf("root user: %d secrets, environment %v", len(d.Secrets), cfg.Services[0].Environment)
	}
	golden.Assert(t, "user/douala/compose.yaml", r.Compose)

	for _, tc := range []struct {
		set        []string
		dropSecret string // a secret the site does not name
		want       string
	}{
		{[]string{"mongo.user=sitectl", "mongo.password.env=X"}, "mongo-password", "needs its password as the secret"},
		{[]string{"values.mongo.tls_mode=requireTLS"}, "", "needs the secret"},
		{[]string{"values.mongo.tls_mode=maybe"}, "", "allowed: disabled"},
	} {
		topo := stacktest.Load(t, "dev", tc.set...)
		delete(topo.Site("douala").Secrets, tc.dropSecret)
		_, err := mongo.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.set, err, tc.want)
		}
	}
}

// TestMemberServices: the services and volumes the site-loss drill stops and
// deletes are the ones the stack deploys, for one member and for two.
func TestMemberServices(t *testing.T) {
	for _, n := range []int{1, 2} {
		topo := stacktest.Load(t, "production")
		s := topo.Site("douala")
		if n == 2 {
			second := s.Mongo.Members[0]
			second.Host = "10.10.0.12:27018"
			s.Mongo.Members = append(s.Mongo.Members, second)
		}
		in := stacks.Input{Topo: topo, Site: s}
		r, err := mongo.Stack{}.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		d := stacktest.Convert(t, in, r)
		ms := mongo.MemberServices(s)
		if len(ms) != len(s.Mongo.Members) || len(ms) != len(d.Services) {
			t.Fatalf("%d member services for %d members, %d deployed", len(ms), len(s.Mongo.Members), len(d.Services))
		}
		for i, m := range ms {
			svc := d.Services[i]
			var vols []string
			for _, mnt := range svc.Spec.TaskTemplate.ContainerSpec.Mounts {
				vols = append(vols, mnt.Source)
			}
			if m.Service != svc.Name || !slices.Contains(vols, m.Volume) || m.Host != s.Mongo.Members[i].Host {
				t.Errorf("member %d: %+v; deployed service %s with volumes %v", i, m, svc.Name, vols)
			}
		}
	}
}
