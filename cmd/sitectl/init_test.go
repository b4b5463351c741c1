package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInit: `sitectl init DIR` in an empty folder outside this repository writes a
// configuration repository of the operator's own that validates in every
// environment (sites from --site, their apps included), renders its example app at
// every site, and whose pipelines install this sitectl version and pass their own
// drift check and `ci lint`. A non-empty DIR and bad --site values are refused,
// writing nothing.
func TestInit(t *testing.T) {
	old := version
	version = "v1.4.0" // a release build: the pipelines pin it
	t.Cleanup(func() { version = old })
	root := filepath.Join(t.TempDir(), "ops-config")
	out, _, err := run(t, nil, "init", root, "--site", "hq:hub:10.30.0.0/24", "--site", "plant:spoke:10.10.0.0/24", "--site", "depot:spoke:10.20.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "✓ "+root+": 17 files") {
		t.Errorf("init output: %s", out)
	}
	t.Chdir(root)
	for _, env := range []string{"dev", "staging", "production"} {
		out, _, err := run(t, nil, "config", "validate", "--config-dir", filepath.Join(root, "sites"), "--env", env)
		if err != nil || !strings.Contains(out, "✓ "+env+": depot, hq, plant valid") {
			t.Errorf("config validate --env %s: %v\n%s", env, err, out)
		}
		if _, _, err := run(t, nil, "ci", "generate", "--env", env, "--check", "ci/"+env+".yml"); err != nil {
			t.Errorf("the %s pipeline's drift check: %v", env, err)
		}
	}
	for _, f := range []string{".gitlab-ci.yml", "ci/dev.yml", "ci/production.yml"} {
		if _, _, err := run(t, nil, "ci", "lint", f); err != nil {
			t.Errorf("ci lint %s: %v", f, err)
		}
	}
	dev, err := os.ReadFile("ci/dev.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dev), "go install -trimpath github.com/sitectl/sitectl/cmd/sitectl@v1.4.0") || strings.Contains(string(dev), "go build") {
		t.Errorf("ci/dev.yml does not install the pinned sitectl")
	}
	if !strings.Contains(string(dev), "#   web (apps/web/) at depot, hq, plant") {
		t.Errorf("ci/dev.yml does not list the example app")
	}
	out, _, err = run(t, nil, "stacks", "render", "--env", "dev", "--all", "-q")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"depot", "hq", "plant"} {
		if !strings.Contains(out, "==> "+s+"/web/compose.yaml <==") {
			t.Errorf("the example app is not rendered at %s", s)
		}
	}
	hq, err := os.ReadFile("sites/hq.yaml")
	if err != nil || !strings.Contains(string(hq), "peers: [depot, plant]") || !strings.Contains(string(hq), "role: hub") {
		t.Errorf("sites/hq.yaml: %v\n%s", err, hq)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{root}, "is not empty"},
		{[]string{"new1", "--site", "a:hub"}, `--site "a:hub": want NAME:ROLE:LAN`},
		{[]string{"new2", "--site", "a:edge:10.1.0.0/24"}, `role "edge": allowed: hub, spoke`},
		{[]string{"new3", "--site", "a:hub:10.1.0.0/24", "--site", "b:hub:10.2.0.0/24"}, "2 hubs"},
		{[]string{"new4", "--site", "a:hub:10.1.0.0/16", "--site", "b:spoke:10.1.2.0/24"}, "overlap"},
		{[]string{"new5", "--sitectl-version", "latest"}, `"latest" is not a module version`},
	} {
		_, _, err := run(t, nil, append([]string{"init"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("init %v: err %v, want %q", tc.args, err, tc.want)
		}
		if tc.args[0] != root {
			if _, err := os.Stat(tc.args[0]); !os.IsNotExist(err) {
				t.Errorf("init %v wrote %s", tc.args, tc.args[0])
			}
		}
	}
}
