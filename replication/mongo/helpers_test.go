package mongo

import (
	"testing"

	"github.com/sitectl/sitectl/sites"
)

// loadTopo loads the repo's example sites (env dev) without the mongo user the
// example config names (the fake members here run without users; the auth tests set
// one); mutate then adjusts it for the case under test.
func loadTopo(t testing.TB, mutate func(*sites.Topology)) *sites.Topology {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: "../../sites", Env: "dev", Environ: []string{},
		Set: []string{"mongo.user=", "mongo.password.env="}})
	if err != nil {
		t.Fatalf("load sites: %v", err)
	}
	if mutate != nil {
		mutate(topo)
	}
	return topo
}

func directLink(topo *sites.Topology) {
	topo.Links = append(topo.Links, sites.Link{A: "douala", B: "yaounde", Direct: true})
}

func votes(n int) *int            { return &n }
func priority(p float64) *float64 { return &p }
