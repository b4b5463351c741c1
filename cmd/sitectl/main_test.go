package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs the CLI with a fixed, empty environment and returns stdout, stderr and
// the error.
func run(t *testing.T, environ []string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCommand(Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, environ)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// exampleConfig copies the repo's sites/ (without lab files) into a temp dir.
func exampleConfig(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "..", "sites")
	for _, pattern := range []string{"*.yaml", "*.sql", "env/*.yaml"} {
		matches, _ := filepath.Glob(filepath.Join(src, pattern))
		for _, m := range matches {
			rel, _ := filepath.Rel(src, m)
			if rel == filepath.Join("env", "lab.yaml") {
				continue
			}
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
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
