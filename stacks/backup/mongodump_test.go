package backup_test

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	bkstack "github.com/sitectl/sitectl/stacks/backup"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestRenderMongodump: values.backup.mongodump at the hub in production renders a
// mongodump service reading the hub's hidden member over a direct connection as a
// secondary, placed on that member's node, its password a Docker secret from
// mongo.password; docker/cli's loader and the deploy conversion accept it; goldens
// of the compose file and the dump loop.
func TestRenderMongodump(t *testing.T) {
	topo := stacktest.Load(t, "production", append(layout, "cloud:values.backup.mongodump=true", "cloud:values.backup.mongodump_keep=14")...)
	hub := topo.Site("cloud")
	zero := 0.0
	hub.Mongo.Members = append(hub.Mongo.Members, sites.MongoMember{Host: hub.Nodes[len(hub.Nodes)-1].Address + ":27018", Hidden: true, Priority: &zero})
	in := stacks.Input{Topo: topo, Site: hub}
	r, err := bkstack.Stack{}.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stacktest.LoadCompose(t, r)
	if d := stacktest.Convert(t, in, r); d == nil {
		t.Fatal("no conversion")
	}
	golden.Assert(t, "mongodump/cloud/compose.yml", r.Compose)
	golden.Assert(t, "mongodump/cloud/mongodump.sh", r.Files["mongodump.sh"])
	var svc *struct{ env map[string]*string }
	for _, s := range cfg.Services {
		if s.Name == "mongodump" {
			svc = &struct{ env map[string]*string }{s.Environment}
		}
	}
	if svc == nil {
		t.Fatalf("no mongodump service: %v", cfg.Services)
	}
	hidden := hub.Mongo.Members[len(hub.Mongo.Members)-1].Host
	if uri := svc.env["MONGODUMP_URI"]; uri == nil || !strings.HasPrefix(*uri, "mongodb://"+hidden+"/?") || !strings.Contains(*uri, "directConnection=true") || !strings.Contains(*uri, "readPreference=secondary") {
		t.Errorf("MONGODUMP_URI %q: want a direct connection to the hidden member %s read as a secondary", deref(uri), hidden)
	}
	if k := svc.env["MONGODUMP_KEEP"]; k == nil || *k != "14" {
		t.Errorf("MONGODUMP_KEEP %q, want 14", deref(k))
	}
	if ref := r.Secrets[bkstack.MongodumpPasswordSecret]; ref != hub.Mongo.Password {
		t.Errorf("secret %s refers to %v, want mongo.password's %v", bkstack.MongodumpPasswordSecret, ref, hub.Mongo.Password)
	}
	if _, ok := cfg.Volumes["mongodump"]; !ok {
		t.Errorf("no volume mongodump: %v", cfg.Volumes)
	}
}

// TestMongodumpRefusals: one error naming the site, the key and the fix.
func TestMongodumpRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, site string
		set        []string
		want       string
	}{
		{"not the hub", "douala", []string{"douala:values.backup.mongodump=true"}, "site douala: values.backup.mongodump: the dump is taken at the hub (cloud)"},
		{"one member, none hidden", "cloud", []string{"cloud:values.backup.mongodump=true"}, "the hub has no hidden member and 1 data-bearing member(s): a dump would read the primary; add a hidden member at the hub"},
		{"every too short", "cloud", []string{"cloud:values.backup.mongodump=true", "cloud:values.backup.mongodump_every=10m"}, "values.backup.mongodump_every is \"10m\": give a duration of at least 1h"},
		{"not a bool", "cloud", []string{"cloud:values.backup.mongodump=daily"}, "values.backup.mongodump is \"daily\": allowed: true, false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := stacktest.Load(t, "production", append(layout, tc.set...)...)
			if tc.name == "every too short" {
				hub := topo.Site("cloud")
				hub.Mongo.Members = append(hub.Mongo.Members, sites.MongoMember{Host: "10.30.0.12:27017", Hidden: true})
			}
			_, err := bkstack.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site(tc.site)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "(unset)"
	}
	return *s
}
