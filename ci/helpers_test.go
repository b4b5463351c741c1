package ci

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

var update = flag.Bool("update", false, "rewrite golden files")

// exampleDir is the repository's example configuration.
const exampleDir = "../sites"

// copyConfig copies the example configuration (site files, defaults, SQL and the
// dev/staging/production overlays; not the lab's) into a temp dir and writes extra
// files (path → content) over it.
func copyConfig(t testing.TB, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, sites.EnvDir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"*.yaml", "*.sql", "env/dev.yaml", "env/staging.yaml", "env/production.yaml"} {
		matches, _ := filepath.Glob(filepath.Join(exampleDir, pattern))
		for _, m := range matches {
			rel, _ := filepath.Rel(exampleDir, m)
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, rel), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, content := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// load loads one environment of dir with exactly the given environment variables.
func load(t testing.TB, dir, env string, environ []string) *sites.Topology {
	t.Helper()
	if environ == nil {
		environ = []string{}
	}
	topo, err := sites.Load(sites.Options{Dir: dir, Env: env, Environ: environ})
	if err != nil {
		t.Fatalf("load %s (%s): %v", dir, env, err)
	}
	return topo
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./ci -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the generated output (run go test ./ci -update if the change is intended):\n%s", path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return "(same lines, different bytes)"
}
