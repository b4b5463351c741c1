package ci

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/internal/golden"
)

// TestPipelineWithApps: the dev pipeline of the example configuration with its apps
// (../apps), generated for a repository of the operator's own (sitectl pinned): the
// validate job installs that sitectl version instead of building it from a source
// tree, the header lists the apps and where they run, each deploy job names its
// site's apps, and SITECTL_APPS_DIR tells the jobs where the apps are. Golden.
func TestPipelineWithApps(t *testing.T) {
	dir := copyConfig(t, nil)
	topo := load(t, dir, "dev", nil)
	list, ps := apps.Load(apps.Options{Dir: "../apps", Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	opts := Options{Version: "v0.9.0", AppsDir: "apps", Out: "ci/dev.yml"}
	p, err := Generate(topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(p.Job("validate").Script, "\n")
	if !strings.Contains(script, "go install -trimpath github.com/sitectl/sitectl/cmd/sitectl@v0.9.0") || strings.Contains(script, "go build") {
		t.Errorf("validate script does not install the pinned sitectl:\n%s", script)
	}
	if !strings.Contains(p.Header, "#   identity (apps/identity/) at cloud\n") || !strings.Contains(p.Header, "#   frontend (apps/frontend/) at cloud, douala, yaounde\n") {
		t.Errorf("header does not list the apps:\n%s", p.Header)
	}
	if c := p.Job("deploy:dev:cloud").Comment; !strings.HasSuffix(c, "Its apps: frontend, identity.") {
		t.Errorf("cloud's deploy job comment %q does not name its apps", c)
	}
	if c := p.Job("deploy:dev:douala").Comment; !strings.HasSuffix(c, "Its apps: frontend.") {
		t.Errorf("douala's deploy job comment %q", c)
	}
	if p.Variables["SITECTL_APPS_DIR"] != "apps" {
		t.Errorf("variables %v lack SITECTL_APPS_DIR", p.Variables)
	}
	b, err := Render(topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "dev-apps-pinned.gitlab-ci.yml", b)

	// The command line (header, drift check) is what the pinned sitectl runs: no
	// version in it.
	if got := opts.Command("dev"); got != "sitectl ci generate --env dev --apps-dir apps --out ci/dev.yml" {
		t.Errorf("command %q", got)
	}
}

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"v1.2.3": true, "v0.0.0-20261207120000-abcdef123456": true, "v1.0.0-rc.1": true,
		"": false, "latest": false, "main": false, "v1.2": false, "1.2.3": false, "v1.2.3+dirty": false, "(devel)": false,
	} {
		if err := CheckVersion(v); (err == nil) != ok {
			t.Errorf("CheckVersion(%q) = %v, want ok %v", v, err, ok)
		}
	}
}
