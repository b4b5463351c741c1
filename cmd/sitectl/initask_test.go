package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runIn is run with stdin in, as a terminal when tty.
func runIn(t *testing.T, in string, tty bool, args ...string) (string, string, error) {
	t.Helper()
	old := isTerminal
	isTerminal = func(io.Reader) bool { return tty }
	t.Cleanup(func() { isTerminal = old })
	var out, errb bytes.Buffer
	root := newRootCommand(Streams{In: strings.NewReader(in), Out: &out, Err: &errb}, nil)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// TestInitAsks: `sitectl init DIR` without --site on a terminal asks the site
// names, the hub, each LAN (asking again after a wrong answer) and the
// environments, each with a default, and writes what was answered, which
// validates; without a terminal it writes nothing and names the flags; --defaults
// asks nothing.
func TestInitAsks(t *testing.T) {
	old := version
	version = "v1.4.0"
	t.Cleanup(func() { version = old })
	root := filepath.Join(t.TempDir(), "ops-config")
	// Sites; the hub (first a wrong answer); LANs: hq default, plant typed (first
	// one overlapping hq's), depot default; environments.
	answers := "hq, plant, depot\nnope\nplant\n\n10.10.0.0/16\n10.77.0.0/24\n\nstaging,production\n"
	out, questions, err := runIn(t, answers, true, "init", root)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, questions)
	}
	for _, q := range []string{"Site names (one hub and its spokes, comma-separated) [hub,branch-a,branch-b]: ",
		"Which site is the hub (the others are spokes) [hq]: ", `"nope" is not one of the sites (hq, plant, depot); try again`,
		"LAN of hq (the spoke's IPv4 network) [10.10.0.0/24]: ", "LAN of plant (the hub's IPv4 network) [10.20.0.0/24]: ",
		"10.10.0.0/16 overlaps hq's LAN 10.10.0.0/24; try again", "LAN of depot (the spoke's IPv4 network) [10.30.0.0/24]: ",
		"Environments (dev, staging, production) [dev,staging,production]: "} {
		if !strings.Contains(questions, q) {
			t.Errorf("questions lack %q:\n%s", q, questions)
		}
	}
	if !strings.Contains(out, "✓ "+root) {
		t.Errorf("init output: %s", out)
	}
	plant, err := os.ReadFile(filepath.Join(root, "sites", "plant.yaml"))
	if err != nil || !strings.Contains(string(plant), "role: hub") || !strings.Contains(string(plant), "10.77.0.") {
		t.Errorf("sites/plant.yaml: %v\n%s", err, plant)
	}
	for f, want := range map[string]bool{"sites/hq.yaml": true, "sites/depot.yaml": true, "ci/staging.yml": true, "ci/production.yml": true,
		"sites/env/production.yaml": true, "ci/dev.yml": false, "sites/env/dev.yaml": false} {
		if _, err := os.Stat(filepath.Join(root, f)); (err == nil) != want {
			t.Errorf("%s: written %v, want %v", f, err == nil, want)
		}
	}
	for _, env := range []string{"staging", "production"} {
		if out, _, err := run(t, nil, "config", "validate", "--config-dir", filepath.Join(root, "sites"), "--env", env); err != nil || !strings.Contains(out, "✓ "+env+": depot, hq, plant valid") {
			t.Errorf("config validate --env %s: %v\n%s", env, err, out)
		}
	}

	// Not a terminal: one error naming the flags, nothing written.
	dir := filepath.Join(t.TempDir(), "no-tty")
	_, _, err = runIn(t, answers, false, "init", dir)
	if err == nil || !strings.Contains(err.Error(), "pass --site NAME:ROLE:LAN") || !strings.Contains(err.Error(), "--defaults") {
		t.Errorf("init without a terminal: %v, want the flags named", err)
	}
	// Input ending before the answers: the same flags named, nothing written.
	_, _, err = runIn(t, "hq,plant\n", true, "init", dir)
	if err == nil || !strings.Contains(err.Error(), "the input ended before") || !strings.Contains(err.Error(), "--defaults") {
		t.Errorf("init with the input ending: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("init wrote %s", dir)
	}
	// --defaults: no question.
	out, questions, err = runIn(t, "", false, "init", dir, "--defaults")
	if err != nil || questions != "" || !strings.Contains(out, "✓ "+dir+": 17 files") {
		t.Errorf("init --defaults: %v, asked %q\n%s", err, questions, out)
	}
}
