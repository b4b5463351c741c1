// Package stacktest holds what the stack packages' tests share: loading the repo's
// sites/ for every environment (plus a lab-shaped one), and loading a rendered
// stack with docker/cli's loader and the deploy engine's conversion.
package stacktest

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// Envs are the environments every stack is rendered for: the repo's three, and
// "lab", the repo's sites with a lab-shaped overlay (dnsrr, host-mode ports, lab
// images), written by the test so it does not depend on a running lab.
var Envs = []string{"dev", "staging", "production", "lab"}

// labOverlay is the shape of what `sitectl lab up` writes, without its paths.
const labOverlay = `all:
  deploy:
    endpoint_mode: dnsrr
    publish_mode: host
    encryption_exception: lab kernel has no ESP (CONFIG_INET_ESP)
  networks:
    edge: {encrypted: false}
    app: {encrypted: false}
    data: {encrypted: false}
  images:
    kong: sitectl-lab/kong:standin
    elasticsearch: sitectl-lab/elasticsearch:standin
    logstash: sitectl-lab/logstash:standin
    kibana: sitectl-lab/kibana:standin
    prometheus: sitectl-lab/prometheus:lab
    alertmanager: sitectl-lab/alertmanager:lab
    grafana: sitectl-lab/grafana:standin
    node-exporter: sitectl-lab/node-exporter:lab
    cadvisor: sitectl-lab/cadvisor:standin
    postgres-exporter: sitectl-lab/postgres-exporter:lab
  values:
    elk: {security: false}
`

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Load loads the repo's sites/ for env (see Envs), with set as extra --set flags.
func Load(t testing.TB, env string, set ...string) *sites.Topology {
	t.Helper()
	src := filepath.Join(RepoRoot(t), "sites")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, sites.EnvDir), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || (!strings.HasSuffix(e.Name(), ".yaml") && !strings.HasSuffix(e.Name(), ".sql")) {
			continue
		}
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dir, e.Name()))
	}
	for _, e := range []string{"dev", "staging", "production"} {
		copyFile(t, filepath.Join(src, sites.EnvDir, e+".yaml"), filepath.Join(dir, sites.EnvDir, e+".yaml"))
	}
	if err := os.WriteFile(filepath.Join(dir, sites.EnvDir, "lab.yaml"), []byte(labOverlay), 0o644); err != nil {
		t.Fatal(err)
	}
	// The hub's pki_dir is a fixture holding sitectl's Kong CA, the hub Kong's
	// certificate and the tunnel CA, so kong.yml renders the same everywhere. Each
	// Load gets a private copy: git keeps no file modes beyond 0644, sitectl refuses a
	// key that others can read, and rendering must never write into the repository.
	pki := copyPKI(t, filepath.Join(RepoRoot(t), "stacks", "stacktest", "testdata", "pki"))
	set = append([]string{"cloud:tunnel.pki_dir=" + pki}, set...)
	topo, err := sites.Load(sites.Options{Dir: dir, Env: env, Environ: []string{}, Set: set})
	if err != nil {
		t.Fatalf("load sites for %s: %v", env, err)
	}
	return topo
}

// copyPKI copies the fixture tree at src into a temporary directory, keys with mode
// 0600 and directories 0700 as sitectl's own PKI writes them.
func copyPKI(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(path, ".key") {
			mode = 0o600
		}
		return os.WriteFile(to, b, mode)
	})
	if err != nil {
		t.Fatalf("copy the PKI fixture: %v", err)
	}
	return dst
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// LoadCompose writes r into a directory and loads its compose file with docker/cli's
// loader (ParseYAML + Load), as the deploy engine and `docker stack deploy` do. It
// fails the test when a config's file is not among r.Files.
func LoadCompose(t testing.TB, r stacks.Rendered) *composetypes.Config {
	t.Helper()
	dir := t.TempDir()
	for name, data := range r.Files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dict, err := loader.ParseYAML(r.Compose)
	if err != nil {
		t.Fatalf("%s: compose does not parse: %v\n%s", r.Stack, err, r.Compose)
	}
	cfg, err := loader.Load(composetypes.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []composetypes.ConfigFile{{Filename: filepath.Join(dir, "compose.yml"), Config: dict}},
		Environment: map[string]string{},
	})
	if err != nil {
		t.Fatalf("%s: docker/cli's loader refuses the compose file: %v\n%s", r.Stack, err, r.Compose)
	}
	for name, c := range cfg.Configs {
		if c.External.External {
			continue
		}
		rel, err := filepath.Rel(dir, c.File)
		if err != nil || r.Files[rel] == nil {
			t.Errorf("%s: config %s names file %s, which the stack did not render", r.Stack, name, c.File)
		}
	}
	return cfg
}

// Convert runs the deploy engine's conversion (stacks.Convert: docker/cli's loader
// and converters, secrets resolved from the site's references, configs from r.Files)
// on r. Every secret reference by environment variable (the site's, and the
// stack's own) gets a test value.
func Convert(t *testing.T, in stacks.Input, r stacks.Rendered) *stacks.Desired {
	t.Helper()
	var refs []sites.SecretRef
	for _, ref := range in.Site.Secrets {
		refs = append(refs, ref)
	}
	for _, ref := range r.Secrets {
		refs = append(refs, ref)
	}
	for _, ref := range refs {
		if ref.Env != "" {
			t.Setenv(ref.Env, "test-value-"+strings.ToLower(ref.Env))
		}
	}
	d, err := stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{Key: []byte("test-cluster")})
	if err != nil {
		t.Fatalf("%s for %s/%s: the deploy engine's conversion fails: %v", r.Stack, in.Site.Name, in.Site.Env, err)
	}
	return d
}

// RenderEach renders st for every site of every environment in Envs (one subtest per
// site/env), loads it with docker/cli's loader and converts it like the deploy
// engine, compares the compose file and every rendered file with its golden
// (testdata/<env>/<site>/<name>), then hands everything to check.
func RenderEach(t *testing.T, st stacks.Stack, check func(t *testing.T, in stacks.Input, r stacks.Rendered, cfg *composetypes.Config, d *stacks.Desired)) {
	for _, env := range Envs {
		topo := Load(t, env)
		for _, s := range topo.Sites {
			t.Run(s.Name+"/"+env, func(t *testing.T) {
				in := stacks.Input{Topo: topo, Site: s}
				r, err := st.Render(in)
				if err != nil {
					t.Fatal(err)
				}
				cfg := LoadCompose(t, r)
				d := Convert(t, in, r)
				for _, svc := range cfg.Services {
					if svc.Deploy.EndpointMode != s.Deploy.EndpointMode {
						t.Errorf("%s: endpoint_mode %q, the site says %q", svc.Name, svc.Deploy.EndpointMode, s.Deploy.EndpointMode)
					}
				}
				golden.Assert(t, env+"/"+s.Name+"/compose.yml", r.Compose)
				for name, b := range r.Files {
					golden.Assert(t, env+"/"+s.Name+"/"+name, b)
				}
				check(t, in, r, cfg, d)
			})
		}
	}
}

// FixtureApps is the apps folder of the fixture apps (internal/apps/testdata/apps),
// which no Go code names.
func FixtureApps(t testing.TB) string {
	return filepath.Join(RepoRoot(t), "internal", "apps", "testdata", "apps")
}

// WithApps loads the apps of dir onto topo (failing the test on any problem).
func WithApps(t testing.TB, topo *sites.Topology, dir string) *sites.Topology {
	t.Helper()
	list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatalf("load apps of %s: %v", dir, ps)
	}
	topo.Apps = list
	return topo
}
