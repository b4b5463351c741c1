package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStacksRender: the tree printed or written per site; secrets only as
// references; a folder render did not write is refused, and a site that cannot be
// rendered writes nothing for any site.
func TestStacksRender(t *testing.T) {
	dir := exampleConfig(t, nil)
	const value = "canary-value-render-1"
	env := []string{"SITECTL_PG_PASSWORD=" + value}
	base := []string{"--config-dir", dir, "--env", "dev", "stacks", "render"}
	tests := []struct {
		name    string
		args    []string
		setup   func(t *testing.T, out string)
		wantOut []string
		wantErr string
		files   []string // under the --dir, after the run
	}{
		{name: "stdout", args: []string{"--site", "douala"},
			wantOut: []string{"==> douala/postgres/compose.yaml <==", "file: secrets/postgres-password", "==> douala/secrets.sh <==", "from_env SITECTL_PG_PASSWORD postgres/secrets/postgres-password"}},
		{name: "dir", args: []string{"--site", "douala,cloud", "--dir", "OUT"},
			wantOut: []string{"cloud: ", "files in OUT/cloud\n", "douala: 15 files in OUT/douala\n"},
			files:   []string{"douala/postgres/compose.yaml", "douala/kong/kong.yml", "cloud/networks.sh", "cloud/.sitectl-render"}},
		{name: "foreign folder", args: []string{"--site", "douala", "--dir", "OUT"},
			setup: func(t *testing.T, out string) {
				if err := os.MkdirAll(filepath.Join(out, "douala"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(out, "douala", "mine"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "was not written by sitectl stacks render", files: []string{"douala/mine"}},
		// Refused by the compose loader, as deploy would (or by the config loader).
		{name: "a site that cannot render", args: []string{"--site", "douala,yaounde", "--dir", "OUT", "--set", "yaounde:values.django-api.health_interval=soon"},
			wantErr: "yaounde"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, out)
			}
			var args []string
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "OUT", out))
			}
			stdout, _, err := run(t, env, append(base, args...)...)
			if strings.Contains(stdout, value) {
				t.Fatal("a secret value is in the output")
			}
			if tt.wantErr != "" {
				if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want exit 1 with %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wantOut {
				if w = strings.ReplaceAll(w, "OUT", out); !strings.Contains(stdout, w) {
					t.Errorf("output does not say %q:\n%.400s", w, stdout)
				}
			}
			var got []string
			if err := filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					rel, _ := filepath.Rel(out, p)
					got = append(got, rel)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				if !strings.Contains(strings.Join(got, " "), f) {
					t.Errorf("%s not written: %v", f, got)
				}
			}
			if tt.files == nil && len(got) != 0 {
				t.Errorf("files written: %v", got)
			}
		})
	}
}
