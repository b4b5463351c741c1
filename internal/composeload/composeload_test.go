package composeload

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker/cli/cli/compose/loader"
	"github.com/docker/cli/cli/compose/schema"
	composetypes "github.com/docker/cli/cli/compose/types"
)

// TestSchemasAreDockerCLIs: data/ is byte-for-byte the schema files of the docker/cli
// module go.mod requires (after a docker/cli upgrade: copy its
// cli/compose/schema/data/config_schema_v*.json here).
func TestSchemasAreDockerCLIs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/docker/cli").Output()
	if err != nil {
		t.Skipf("go list -m github.com/docker/cli: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "cli", "compose", "schema", "data")
	theirs, err := filepath.Glob(filepath.Join(dir, "config_schema_v*.json"))
	if err != nil || len(theirs) == 0 {
		t.Fatalf("no schema files in %s (%v)", dir, err)
	}
	ours, _ := fs.Glob(schemas, "data/config_schema_v*.json")
	if len(ours) != len(theirs) {
		t.Errorf("data/ has %d schema files, docker/cli %d: copy %s/config_schema_v*.json to data/", len(ours), len(theirs), dir)
	}
	for _, f := range theirs {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := schemas.ReadFile("data/" + filepath.Base(f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("data/%s differs from docker/cli's %s (%v): copy it", filepath.Base(f), f, err)
		}
	}
}

// corpus is every compose file under the repository's testdata, apps/ and
// docker/cli-style fixtures, plus for each a few invalid variants.
func corpus(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || (!strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml")) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("\nservices:")) && !bytes.HasPrefix(b, []byte("services:")) {
			return err
		}
		dict, err := loader.ParseYAML(b)
		if err != nil {
			return nil // not YAML docker/cli parses: not a compose file
		}
		if _, ok := dict["services"].(map[string]any); !ok {
			return nil
		}
		out[p] = dict
		if testing.Short() && len(out)%3 != 0 {
			return nil // -short: the variants of every third file
		}
		for name, mutate := range mutations {
			b2, _ := loader.ParseYAML(b)
			if mutate(b2) {
				out[p+" "+name] = b2
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// firstService is the first service (by name) of dict, as a map to mutate.
func firstService(dict map[string]any) map[string]any {
	svcs, _ := dict["services"].(map[string]any)
	var first string
	for n := range svcs {
		if first == "" || n < first {
			first = n
		}
	}
	s, _ := svcs[first].(map[string]any)
	return s
}

// mutations make a compose file invalid (or, for some, keep it valid) in ways
// the schema and its formats decide.
var mutations = map[string]func(map[string]any) bool{
	"unknown-key": func(d map[string]any) bool {
		s := firstService(d)
		s["no_such_key"] = 1
		return s != nil
	},
	"replicas-word": func(d map[string]any) bool {
		s := firstService(d)
		s["deploy"] = map[string]any{"replicas": "two"}
		return s != nil
	},
	"bad-duration": func(d map[string]any) bool {
		s := firstService(d)
		s["healthcheck"] = map[string]any{"test": []any{"CMD", "true"}, "interval": "ten seconds"}
		return s != nil
	},
	"good-duration": func(d map[string]any) bool {
		s := firstService(d)
		s["healthcheck"] = map[string]any{"test": []any{"CMD", "true"}, "interval": "10s"}
		return s != nil
	},
	"bad-port": func(d map[string]any) bool {
		s := firstService(d)
		s["ports"] = []any{"80:80:80:80"}
		return s != nil
	},
	"good-port": func(d map[string]any) bool {
		s := firstService(d)
		s["ports"] = []any{"8080:80", 9000}
		return s != nil
	},
	"update-order-word": func(d map[string]any) bool {
		s := firstService(d)
		s["deploy"] = map[string]any{"update_config": map[string]any{"order": "sideways", "parallelism": 1}}
		return s != nil
	},
	"version-3.8":     func(d map[string]any) bool { d["version"] = "3.8"; return true },
	"version-3.0":     func(d map[string]any) bool { d["version"] = "3.0"; return true },
	"version-unknown": func(d map[string]any) bool { d["version"] = "3.99"; return true },
}

// TestFastPathDecidesAsDockerCLI: wherever the cached schema is used, it accepts
// exactly the files docker/cli's schema.Validate accepts, and Load returns what
// loader.Load returns (the same config, or the same error).
func TestFastPathDecidesAsDockerCLI(t *testing.T) {
	files := corpus(t)
	if len(files) < 50 {
		t.Fatalf("only %d compose files and variants found; the corpus is the repository's testdata", len(files))
	}
	var used, valid, invalid int
	for name, dict := range files {
		details := composetypes.ConfigDetails{WorkingDir: "/w", ConfigFiles: []composetypes.ConfigFile{{Filename: "compose.yaml", Config: dict}},
			Environment: map[string]string{}}
		theirs := schema.Validate(dict, schema.Version(dict))
		fast := fastValid(details, nil)
		eligible := !hasDollar(dict) && schemaFor(schema.Version(dict)) != nil
		switch {
		case fast && theirs != nil:
			t.Errorf("%s: the cached schema accepts what docker/cli refuses: %v", name, theirs)
		case eligible && !fast && theirs == nil:
			t.Errorf("%s: the cached schema refuses what docker/cli accepts", name)
		}
		if fast {
			used++
		}
		if eligible && theirs == nil {
			valid++
		} else if eligible {
			invalid++
		}
		if strings.Contains(name, " ") {
			continue // a variant: its decision is checked above
		}
		want, wantErr := loader.Load(details)
		got, gotErr := Load(details)
		// docker/cli's order of services, and so which error it names first, varies
		// from run to run: compare sorted, and errors by whether there is one.
		if (wantErr == nil) != (gotErr == nil) {
			t.Errorf("%s: Load: %v, loader.Load: %v", name, gotErr, wantErr)
		} else if wantErr == nil && !reflect.DeepEqual(sorted(got), sorted(want)) {
			t.Errorf("%s: Load's config differs from loader.Load's", name)
		}
	}
	t.Logf("%d files: the cached schema decided %d (%d valid, %d invalid eligible)", len(files), used, valid, invalid)
	if used < 30 || invalid < 30 {
		t.Errorf("the fast path decided %d files and saw %d invalid ones: the corpus no longer exercises it", used, invalid)
	}
}

// sorted sorts cfg's services by name.
func sorted(cfg *composetypes.Config) *composetypes.Config {
	slices.SortFunc(cfg.Services, func(a, b composetypes.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	return cfg
}

// TestFallsBack: a `$`, two files, an unknown version or SkipValidation leave the
// validating to loader.Load.
func TestFallsBack(t *testing.T) {
	mk := func(version, image string) composetypes.ConfigFile {
		d := map[string]any{"services": map[string]any{"web": map[string]any{"image": image}}}
		if version != "" {
			d["version"] = version
		}
		return composetypes.ConfigFile{Filename: "compose.yaml", Config: d}
	}
	one := func(f composetypes.ConfigFile) composetypes.ConfigDetails {
		return composetypes.ConfigDetails{ConfigFiles: []composetypes.ConfigFile{f}, Environment: map[string]string{"TAG": "1"}}
	}
	if !fastValid(one(mk("", "nginx:1")), nil) {
		t.Fatal("a plain valid file does not take the fast path")
	}
	for name, c := range map[string]struct {
		d    composetypes.ConfigDetails
		opts []func(*loader.Options)
	}{
		"dollar":          {d: one(mk("", "nginx:${TAG}"))},
		"two files":       {d: composetypes.ConfigDetails{ConfigFiles: []composetypes.ConfigFile{mk("", "a:1"), mk("", "b:1")}}},
		"unknown version": {d: one(mk("3.99", "nginx:1"))},
		"skip validation": {d: one(mk("", "nginx:1")), opts: []func(*loader.Options){func(o *loader.Options) { o.SkipValidation = true }}},
	} {
		if fastValid(c.d, c.opts) {
			t.Errorf("%s: took the fast path", name)
		}
	}
	if _, err := Load(one(mk("3.99", "nginx:1"))); err == nil || !strings.Contains(err.Error(), "unsupported Compose file version") {
		t.Errorf("unknown version: %v, want docker/cli's refusal", err)
	}
}

// BenchmarkLoad is one load of a small compose file: loader.Load compiles the
// schema each time, Load once per process.
func BenchmarkLoad(b *testing.B) {
	dict := map[string]any{"services": map[string]any{"web": map[string]any{"image": "nginx:1", "deploy": map[string]any{"replicas": 2}}}}
	details := composetypes.ConfigDetails{ConfigFiles: []composetypes.ConfigFile{{Filename: "compose.yaml", Config: dict}}, Environment: map[string]string{}}
	for _, c := range []struct {
		name string
		load func(composetypes.ConfigDetails, ...func(*loader.Options)) (*composetypes.Config, error)
	}{{"docker-cli", loader.Load}, {"composeload", Load}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.load(details); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
