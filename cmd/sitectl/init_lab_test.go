package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labtest"
)

// TestLabInitRepoPlans: a configuration repository made by `sitectl init` in an
// empty folder outside this repository, with the lab's sites (douala and yaounde
// spokes, cloud the hub, the lab's LANs), plans against the shared lab: with the
// lab's environment overlay (env/lab.yaml, what `sitectl lab up --config-dir` writes
// for these sites) `config validate --env lab` passes and `plan --all --env lab`
// reaches every site's engine and plans the repository's example app there.
func TestLabInitRepoPlans(t *testing.T) {
	l := labtest.Shared(t)
	root := filepath.Join(t.TempDir(), "ops-config")
	if _, stderr, err := run(t, nil, "init", root, "--sitectl-version", "v1.4.0",
		"--site", "douala:spoke:10.10.0.0/24", "--site", "yaounde:spoke:10.20.0.0/24", "--site", "cloud:hub:10.30.0.0/24"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	overlay, err := os.ReadFile(lab.OverlayPath(l.ConfigDir))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lab.OverlayPath(filepath.Join(root, "sites")), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	out, stderr, err := run(t, nil, "config", "validate", "--env", "lab")
	if err != nil || !strings.Contains(out, "✓ lab: cloud, douala, yaounde valid") {
		t.Fatalf("config validate --env lab: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = run(t, nil, "plan", "--all", "--env", "lab")
	var exit *ExitError
	if err != nil && (!errors.As(err, &exit) || exit.Code != 2) { // 2: changes pending
		t.Fatalf("plan --all --env lab: %v\n%s%s", err, out, stderr)
	}
	for _, s := range []string{"cloud", "douala", "yaounde"} {
		_, rest, ok := strings.Cut(out, s+" (env lab)")
		if !ok {
			t.Errorf("plan --all: no plan of %s:\n%s", s, out)
			continue
		}
		if next := strings.Index(rest, " (env lab)"); next >= 0 {
			rest = rest[:next]
		}
		if !strings.Contains(rest, "web_web") && !strings.Contains(rest, "app web") {
			t.Errorf("plan --all: %s's plan does not name the example app web:\n%s", s, rest)
		}
	}
	t.Logf("plan --all of the init repository against the lab:\n%s", out)
}
