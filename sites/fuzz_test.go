package sites

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as a site file and as an environment overlay: the
// loader may refuse them but must never panic. The seed corpus (the example files and
// some broken ones) runs in every `go test`.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"douala.yaml", "cloud.yaml", "defaults.yaml", "env/production.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte("all: {}\n"))
		f.Add([]byte("role: hub\n"), b)
	}
	for _, seed := range []string{
		"", "null", "[]", "- a\n- b", "role: [x", "nodes: 5", "nodes: [1, 2]", "nodes:\n  - {labels: 7}",
		"networks: {edge: 1}", "tunnel: {psk: secret}", "postgres: {password: [1]}", "secrets: {a: b}",
		"deploy: {timeout: forever}", "mongo: {members: [{votes: x}]}", "values: {kong: 3}", "images: [a]",
		"? [a, b]\n: c", "a: &x [*x]", "lan: 10.0.0.0/33", "engine: {host: 'unix://'}",
	} {
		f.Add([]byte(seed), []byte(seed))
	}
	dir := f.TempDir()
	copyInto := func(t *testing.T, site, env []byte) string {
		d := t.TempDir()
		for _, n := range []string{"defaults.yaml", "douala.yaml", "yaounde.yaml", "cloud.yaml", "schema.sql"} {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			if n == "yaounde.yaml" {
				b = site
			}
			if err := os.WriteFile(filepath.Join(d, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Join(d, EnvDir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, EnvDir, "dev.yaml"), env, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	_ = dir
	f.Fuzz(func(t *testing.T, site, env []byte) {
		d := copyInto(t, site, env)
		topo, err := Load(Options{Dir: d, Env: "dev", Environ: []string{}})
		if err == nil && topo == nil {
			t.Fatal("nil topology without an error")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}
