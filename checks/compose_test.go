package checks_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	composeloader "github.com/compose-spec/compose-go/v2/loader"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	_ "github.com/sitectl/sitectl/stacks/all"
	"github.com/sitectl/sitectl/stacks/stacktest"
	"github.com/sitectl/sitectl/tunnels"
	"github.com/sitectl/sitectl/tunnels/service"
)

// A second, independent compose loader: compose-go v2, the Compose specification's
// reference implementation (docker compose uses it), over every compose file sitectl
// renders: each stack a site lists, for every site of every environment, and each
// site's strongswan service (`sitectl tunnels render --service`). docker/cli's loader
// (what `docker stack deploy` and the deploy engine use) loads them too.

// warnings collects what compose-go logs (through logrus) while it loads a file.
type warnings struct{ msgs []string }

func (w *warnings) Levels() []logrus.Level { return logrus.AllLevels[:logrus.WarnLevel+1] }
func (w *warnings) Fire(e *logrus.Entry) error {
	w.msgs = append(w.msgs, e.Message)
	return nil
}

// knownWarning is compose-go's note on the `version: "3.8"` every stack's compose
// file carries; compose-go ignores the attribute and docker/cli's loader accepts it.
const knownWarning = "the attribute `version` is obsolete"

// composeGo loads one rendered stack with compose-go: schema validation,
// interpolation, normalization and the consistency check (every network, config,
// secret and volume a service names is declared). It returns the project, what
// compose-go warned about (knownWarning left out), or the loader's error.
func composeGo(t *testing.T, r stacks.Rendered) (*composetypes.Project, []string, error) {
	t.Helper()
	hook := &warnings{}
	std := logrus.StandardLogger()
	saved, out := std.ReplaceHooks(logrus.LevelHooks{}), std.Out
	std.AddHook(hook)
	std.SetOutput(io.Discard)
	defer func() { std.ReplaceHooks(saved); std.SetOutput(out) }()
	dir := t.TempDir()
	for name, b := range r.Files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "compose.yml")
	if err := os.WriteFile(file, r.Compose, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := composeloader.LoadWithContext(ctx, composetypes.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []composetypes.ConfigFile{{Filename: file, Content: r.Compose}},
		Environment: composetypes.Mapping{},
	}, func(o *composeloader.Options) {
		o.SetProjectName(r.Stack, true)
	})
	var warned []string
	for _, m := range hook.msgs {
		if !strings.Contains(m, knownWarning) {
			warned = append(warned, m)
		}
	}
	return p, warned, err
}

// renderedSite is every compose file deploy sends for one site.
func renderedSite(t *testing.T, topo *sites.Topology, s *sites.Site) []stacks.Rendered {
	t.Helper()
	var out []stacks.Rendered
	for _, name := range s.Stacks {
		st, err := stacks.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := st.Render(stacks.Input{Topo: topo, Site: s})
		if err != nil {
			t.Fatalf("render %s for %s/%s: %v", name, s.Name, s.Env, err)
		}
		out = append(out, r)
	}
	if s.Tunnel.Auth == "x509" {
		ca, gw := tunnels.SiteCerts(topo, s)
		if _, _, err := tunnels.Ensure(ca, gw, s.Gateway.ID, s.Tunnel.KeyType, s.Tunnel.CertLifetime.D()); err != nil {
			t.Fatal(err)
		}
	}
	if s.Tunnel.IPsec != "libipsec" { // libipsec runs charon on the host, not as a service
		r, _, err := service.Render(topo, s)
		if err != nil {
			t.Fatalf("render the strongswan service for %s/%s: %v", s.Name, s.Env, err)
		}
		out = append(out, r)
	}
	return out
}

// TestComposeGoLoadsEveryStack loads every rendered compose file with compose-go and
// docker/cli, and checks they agree on the services and their images.
func TestComposeGoLoadsEveryStack(t *testing.T) {
	var total time.Duration
	files := 0
	for _, env := range stacktest.Envs {
		topo := stacktest.Load(t, env, "tunnel.pki_dir="+t.TempDir())
		for _, s := range topo.Sites {
			for _, r := range renderedSite(t, topo, s) {
				t.Run(env+"/"+s.Name+"/"+r.Stack, func(t *testing.T) {
					start := time.Now()
					p, warned, err := composeGo(t, r)
					total += time.Since(start)
					files++
					if err != nil {
						t.Fatalf("compose-go refuses the rendered compose file: %v\n%s", err, r.Compose)
					}
					if len(warned) > 0 {
						t.Errorf("compose-go warns about the rendered compose file:\n  %s\n%s", strings.Join(warned, "\n  "), r.Compose)
					}
					cfg := stacktest.LoadCompose(t, r) // docker/cli's loader
					got := map[string]string{}
					for name, svc := range p.Services {
						got[name] = svc.Image
					}
					want := map[string]string{}
					for _, svc := range cfg.Services {
						want[svc.Name] = svc.Image
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("the loaders disagree on services and images:\ncompose-go: %v\ndocker/cli: %v", got, want)
					}
					if len(got) == 0 {
						t.Error("no service loaded")
					}
				})
			}
		}
	}
	if files > 0 {
		t.Logf("compose-go loaded %d compose files in %v (%v each)", files, total.Round(time.Millisecond), (total / time.Duration(files)).Round(time.Microsecond))
	}
}

// TestComposeGoRefusesBroken shows the check can fail: a rendered compose file with
// a misspelt field, a wrong type, an undeclared network or an undeclared secret is
// refused by compose-go.
func TestComposeGoRefusesBroken(t *testing.T) {
	topo := stacktest.Load(t, "dev", "tunnel.pki_dir="+t.TempDir())
	var r stacks.Rendered
	for _, rr := range renderedSite(t, topo, topo.Site("douala")) {
		if rr.Stack == "postgres" {
			r = rr
		}
	}
	if r.Compose == nil {
		t.Fatal("douala renders no postgres stack to break")
	}
	if _, warned, err := composeGo(t, r); err != nil || len(warned) > 0 {
		t.Fatalf("the unbroken file is refused: %v %v", err, warned)
	}
	compose := string(r.Compose)
	cases := []struct{ name, old, new, want string }{
		{"misspelt field", "    deploy:\n", "    deploy:\n      replicass: 2\n", "replicass"},
		{"wrong type", "    deploy:\n", "    deploy:\n      replicas: many\n", "replicas"},
		{"undeclared network", "    networks:\n", "    networks:\n      - no-such-network\n", "no-such-network"},
		{"undeclared secret", "    secrets:\n", "    secrets:\n      - no-such-secret\n", "no-such-secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(compose, c.old) {
				t.Fatalf("the postgres compose file has no %q to break:\n%s", c.old, compose)
			}
			broken := r
			broken.Compose = []byte(strings.Replace(compose, c.old, c.new, 1))
			_, _, err := composeGo(t, broken)
			if err == nil {
				t.Fatalf("compose-go accepted a broken compose file (%s):\n%s", c.name, broken.Compose)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("compose-go's error does not name %q: %v", c.want, err)
			}
			t.Logf("refused: %v", err)
		})
	}
}
