// Package labtest gives other packages' lab tests one shared, real lab: Shared(t)
// returns a running lab (reused when SITECTL_LAB_PREFIX names one that is up, else
// brought up once per test binary from a copy of the repository's sites/ config), and
// Main(m) tears down, at the end of the package's tests, a lab this binary made.
//
//	func TestMain(m *testing.M) { labtest.Main(m) }
//
//	func TestLabSomething(t *testing.T) {
//		l := labtest.Shared(t) // skips under -short or when not root
//		site := l.Topo.Site("douala")
//		...
//	}
package labtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labgate"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/sites"
)

// DefaultPrefix is the prefix of a lab the tests bring up themselves.
const DefaultPrefix = "slt"

// Lab is a running lab.
type Lab struct {
	// ConfigDir is the config dir whose env/lab.yaml points at the lab.
	ConfigDir string
	Prefix    string
	StateDir  string
	// Topo is the configuration loaded for the lab environment.
	Topo  *sites.Topology
	State *lab.State
	// owned is true when this test binary brought the lab up (and Main tears it down).
	owned bool
	tmp   string
}

var (
	once   sync.Mutex
	shared *Lab
	upErr  error
	tried  bool
)

// Skip is labgate.Skip: it skips t under -short and when not root.
func Skip(t testing.TB) {
	t.Helper()
	labgate.Skip(t)
}

// Shared returns the lab for this test binary, bringing it up on first use.
func Shared(t testing.TB) *Lab {
	t.Helper()
	Skip(t)
	once.Lock()
	defer once.Unlock()
	if !tried {
		tried = true
		shared, upErr = get()
	}
	if upErr != nil {
		t.Fatalf("lab: %v", upErr)
	}
	return shared
}

// Main runs the package's tests and removes a lab this binary brought up.
func Main(m *testing.M) {
	code := m.Run()
	once.Lock()
	l := shared
	once.Unlock()
	if l != nil && l.owned {
		if err := l.Down(); err != nil {
			fmt.Fprintln(os.Stderr, "labtest: lab down:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

func get() (*Lab, error) {
	prefix := os.Getenv("SITECTL_LAB_PREFIX")
	if prefix == "" {
		prefix = DefaultPrefix
	}
	stateDir := os.Getenv("SITECTL_LAB_DIR")
	if stateDir == "" {
		stateDir = lab.DefaultStateDir + "-" + prefix
	}
	// A lab that is up already (made by `sitectl lab up` or another test binary) is
	// reused and left running.
	if st, err := lab.ReadState(stateDir); err == nil {
		if status, err := lab.GetStatus(context.Background(), lab.Options{Prefix: prefix, StateDir: stateDir}); err == nil && status.Up && st.Complete {
			return load(st.ConfigDir, prefix, stateDir, st, false, "")
		}
		// A broken lab of the tests' own prefix is what a crashed test run left:
		// clear it. One named by SITECTL_LAB_PREFIX is an operator's: say so.
		if prefix != DefaultPrefix {
			return nil, fmt.Errorf("lab %s (SITECTL_LAB_PREFIX) is not healthy: run `sitectl lab down --prefix %s && sitectl lab up --prefix %s`, or unset SITECTL_LAB_PREFIX", prefix, prefix, prefix)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := lab.Down(ctx, lab.Options{ConfigDir: st.ConfigDir, Prefix: prefix, StateDir: stateDir})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("clear the broken test lab %s: %w", prefix, err)
		}
	}
	src, err := RepoSites()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "sitectl-lab-config-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(tmp, "sites")
	if err := CopyConfig(src, cfg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := lab.Up(ctx, lab.Options{ConfigDir: cfg, Prefix: prefix, StateDir: stateDir})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("lab up (prefix %s): %w", prefix, err)
	}
	// Another binary may have brought the same lab up meanwhile: then it owns it.
	return load(cfg, prefix, stateDir, res.State, res.Changed, tmp)
}

func load(cfg, prefix, stateDir string, st *lab.State, owned bool, tmp string) (*Lab, error) {
	topo, err := sites.Load(sites.Options{Dir: cfg, Env: lab.EnvName, Environ: []string{}})
	if err != nil {
		return nil, fmt.Errorf("load the lab environment of %s: %w", cfg, err)
	}
	labreach.Install(topo)
	return &Lab{ConfigDir: cfg, Prefix: prefix, StateDir: stateDir, Topo: topo, State: st, owned: owned, tmp: tmp}, nil
}

// Down removes the lab and its temporary config dir.
func (l *Lab) Down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := lab.Down(ctx, lab.Options{ConfigDir: l.ConfigDir, Prefix: l.Prefix, StateDir: l.StateDir})
	if l.tmp != "" {
		os.RemoveAll(l.tmp)
	}
	return err
}

// Namespace returns the namespace of "site" (its gateway, from which its LAN is
// reachable) or "site/node".
func (l *Lab) Namespace(target string) (string, error) {
	return lab.ResolveNamespace(lab.Options{Prefix: l.Prefix, StateDir: l.StateDir}, target)
}

// Exec runs argv in the namespace of target ("douala" or "douala/douala-db1") and
// returns its combined output.
func (l *Lab) Exec(ctx context.Context, target string, argv ...string) ([]byte, error) {
	ns, err := l.Namespace(target)
	if err != nil {
		return nil, err
	}
	return netns.Run(ctx, ns, argv...)
}

// Docker runs the docker CLI against a node's engine (node name, e.g. douala-db1).
func (l *Lab) Docker(ctx context.Context, node string, args ...string) ([]byte, error) {
	_, n := l.State.Layout.Node(node)
	if n == nil {
		return nil, fmt.Errorf("no node %q in the lab", node)
	}
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", n.Engine()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("docker -H %s %s: %w: %s", n.Engine(), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// RepoSites finds the repository's sites/ dir from the working directory up.
func RepoSites() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "sites", sites.DefaultsFile)); err == nil {
				return filepath.Join(d, "sites"), nil
			}
		}
		if d == "/" {
			return "", errors.New("cannot find the repository's sites/ dir above the working directory")
		}
	}
}

// CopyConfig copies a config dir's YAML and SQL files and its env overlays (not
// lab.yaml, not .sitectl-env); other subdirectories (testdata) are left out.
func CopyConfig(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if rel != "." && rel != sites.EnvDir {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		name := d.Name()
		if rel == filepath.Join(sites.EnvDir, lab.EnvName+".yaml") || name == sites.CurrentEnvFile {
			return nil
		}
		if !strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".sql") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
}
