package mongo

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

var update = flag.Bool("update", false, "rewrite golden files")

// loadTopo loads the repo's example sites (env dev) with the keyfile reference
// resolvable; mutate then adjusts it for the case under test.
func loadTopo(t testing.TB, mutate func(*sites.Topology)) *sites.Topology {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: "../../sites", Env: "dev", Environ: []string{}})
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

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./replication/mongo/ -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
