package ci

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

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
