package stacks_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// TestTreeGolden: the rendered tree of one site (douala, dev, every stack it
// lists), file by file, with the listing (paths and modes) so a file added or
// dropped shows. No secret value is in it: the variables hold canaries.
func TestTreeGolden(t *testing.T) {
	setSecrets(t)
	topo := load(t, "dev")
	files, err := stacks.Tree(context.Background(), stacks.Input{Topo: topo, Site: topo.Site("douala")}, map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	var list strings.Builder
	for _, f := range files {
		fmt.Fprintf(&list, "%04o %s\n", f.Mode, f.Path)
		// A dot file is kept as dot-<name>: a .gitignore under testdata would be git's.
		name := f.Path
		if dir, base := path.Split(name); strings.HasPrefix(base, ".") {
			name = dir + "dot-" + base[1:]
		}
		golden.Assert(t, "tree/douala-dev/"+name, f.Data)
		for _, v := range []string{"pg-secret-value-1", "django-secret-value-1", "mongo-secret-value-1"} {
			if strings.Contains(string(f.Data), v) {
				t.Errorf("%s holds a secret value", f.Path)
			}
		}
	}
	golden.AssertString(t, "tree/douala-dev.list", list.String())
}

// TestTreeRefuses: a stack deploy would refuse is refused by the render too, before
// anything is written; a secret the site does not name is an error naming it.
func TestTreeRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *sites.Site)
		want   string
	}{
		{"secret not in the site config", func(s *sites.Site) { delete(s.Secrets, "postgres-password") }, `the site has no secret "postgres-password"`},
		{"unregistered stack", func(s *sites.Site) { s.Stacks = append(s.Stacks, "redis") }, `stack "redis" is not registered`},
		{"no image", func(s *sites.Site) { delete(s.Images, "postgres") }, `has no image for "postgres"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := load(t, "dev")
			site := topo.Site("douala")
			tt.change(site)
			_, err := stacks.Tree(context.Background(), stacks.Input{Topo: topo, Site: site}, map[string]string{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestSecretsScript: secrets.sh fills <stack>/secrets/<name> with exactly what
// sitectl deploy reads from each reference (a file's trailing CR/LF dropped, an
// env value as it is; a passfile password has no line break inside, see
// sites.SecretRef.ResolveLine), and fails naming the secret and the variable when one is
// unset, or the file when it cannot be read.
func TestSecretsScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "pg-password")
	if err := os.WriteFile(file, []byte("one line with 'quotes' $HOME, a \\ and a : \r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pg      sites.SecretRef
		env     []string
		wantErr string
	}{
		{"file and env", sites.SecretRef{File: file}, []string{"TEST_DJANGO_KEY=  spaces and\nnewline\n"}, ""},
		{"env unset", sites.SecretRef{File: file}, nil, "secret django-secret-key: environment variable TEST_DJANGO_KEY is not set"},
		{"file is a directory", sites.SecretRef{File: dir}, []string{"TEST_DJANGO_KEY=x"}, "secret postgres-password: cannot read " + dir},
		{"docker secret", sites.SecretRef{DockerSecret: "pg"}, []string{"TEST_DJANGO_KEY=x"}, "docker-secret:pg is only readable inside the swarm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := load(t, "dev")
			site := topo.Site("douala")
			site.Stacks = []string{"postgres", "django-api"}
			site.Secrets["postgres-password"] = tt.pg
			site.Postgres.AppPassword = tt.pg
			// The hub's password: douala's passfile holds it.
			topo.Site("cloud").Postgres.Password = tt.pg
			site.Secrets["django-secret-key"] = sites.SecretRef{Env: "TEST_DJANGO_KEY"}
			files, err := stacks.Tree(context.Background(), stacks.Input{Topo: topo, Site: site}, map[string]string{})
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			dst, err := stacks.WriteTree(out, site.Name, files)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", filepath.Join(dst, stacks.SecretsScript))
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
			msg, err := cmd.CombinedOutput()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(string(msg), tt.wantErr) {
					t.Fatalf("secrets.sh: %v: %s\nwant it to fail with %q", err, msg, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("secrets.sh: %v: %s", err, msg)
			}
			for path, ref := range map[string]sites.SecretRef{
				"postgres/secrets/postgres-password":       tt.pg,
				"django-api/secrets/postgres-app-password": tt.pg,
			} {
				want, err := ref.Resolve()
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(filepath.Join(dst, path)); string(got) != string(want) {
					t.Errorf("%s = %q, want %q", path, got, want)
				}
			}
			// The passfile the shell composed is the one deploy composes.
			r, err := stacks.Get("postgres")
			if err != nil {
				t.Fatal(err)
			}
			pr, err := r.Render(stacks.Input{Topo: topo, Site: site})
			if err != nil {
				t.Fatal(err)
			}
			wantPass, err := stacks.PassFileContent(pr.PassFiles["postgres-pgpass"])
			if err != nil || len(wantPass) == 0 {
				t.Fatalf("passfile: %q, %v", wantPass, err)
			}
			if got, _ := os.ReadFile(filepath.Join(dst, "postgres/secrets/postgres-pgpass")); string(got) != string(wantPass) {
				t.Errorf("postgres-pgpass = %q, want %q", got, wantPass)
			}
			want := strings.TrimPrefix(tt.env[0], "TEST_DJANGO_KEY=")
			if got, _ := os.ReadFile(filepath.Join(dst, "django-api/secrets/django-secret-key")); string(got) != want {
				t.Errorf("django-secret-key = %q, want %q", got, want)
			}
			if fi, err := os.Stat(filepath.Join(dst, "postgres/secrets/postgres-password")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("secret file mode: %v %v, want 0600", fi.Mode(), err)
			}
		})
	}
}

// TestWriteTree: a tree replaces the one an earlier render wrote (files it no
// longer has go), and any other folder in its place is refused, untouched.
func TestWriteTree(t *testing.T) {
	out := t.TempDir()
	first := []stacks.File{{Path: "a/compose.yaml", Mode: 0o644, Data: []byte("a")}, {Path: stacks.TreeMarker, Mode: 0o644}}
	if _, err := stacks.WriteTree(out, "douala", first); err != nil {
		t.Fatal(err)
	}
	second := []stacks.File{{Path: "b/compose.yaml", Mode: 0o644, Data: []byte("b")}, {Path: stacks.TreeMarker, Mode: 0o644}}
	if _, err := stacks.WriteTree(out, "douala", second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "douala/a")); err == nil {
		t.Errorf("a file of the earlier render is left")
	}
	if b, _ := os.ReadFile(filepath.Join(out, "douala/b/compose.yaml")); string(b) != "b" {
		t.Errorf("new tree not written")
	}
	foreign := filepath.Join(out, "cloud")
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := stacks.WriteTree(out, "cloud", second)
	if err == nil || !strings.Contains(err.Error(), "was not written by sitectl stacks render") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(filepath.Join(foreign, "notes.txt")); string(b) != "mine" {
		t.Errorf("foreign folder changed")
	}
	if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) != 0 {
		t.Errorf("temporary folders left: %v", left)
	}
}
