package sites

import (
	"os"
	"path/filepath"
	"testing"
)

// copyConfig copies the repo's example configuration (this directory's YAML and SQL
// files) into a temp dir, applies the given files (path → content; "" deletes) and
// returns the dir.
func copyConfig(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, EnvDir), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"*.yaml", "*.sql", "env/*.yaml"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if filepath.Base(m) == "lab.yaml" {
				continue // written by `sitectl lab up`, not part of the examples
			}
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, m), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if content == "" {
			os.Remove(p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
