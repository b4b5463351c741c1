package ci

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Module is sitectl's Go module: a repository of the operator's own installs the
// command from it, pinned.
const Module = "github.com/sitectl/sitectl"

// versionRE is a full module version: vMAJOR.MINOR.PATCH, with an optional
// pre-release (pseudo-versions are pre-releases).
var versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// CheckVersion refuses a sitectl version a pipeline cannot pin: go install needs a
// module version (v1.2.3, or a pseudo-version), never a branch or "latest".
func CheckVersion(v string) error {
	if !versionRE.MatchString(v) {
		return fmt.Errorf("%q is not a module version: pin sitectl to a release tag (v1.2.3) or a pseudo-version (v0.0.0-20260101120000-abcdef123456)", v)
	}
	return nil
}

// installScript is how the validate job gets sitectl: built from this repository
// (sitectl's own), or installed pinned at the version that generated the pipeline
// (an operator's configuration repository holds no sitectl source).
func (g *generator) installScript() []string {
	if g.opts.Version == "" {
		return []string{"go build -trimpath -o " + g.bin + " ./cmd/sitectl"}
	}
	dir := g.bin[:strings.LastIndex(g.bin, "/")]
	return []string{
		fmt.Sprintf(`GOBIN="$CI_PROJECT_DIR/%s" go install -trimpath %s/cmd/sitectl@%s`, dir, Module, g.opts.Version),
	}
}

// installComment says where the validate job's sitectl comes from.
func (g *generator) installComment() string {
	if g.opts.Version == "" {
		return "Builds sitectl (later jobs use this binary)"
	}
	return "Installs sitectl " + g.opts.Version + " (the version that generated this file; later jobs use this binary)"
}

// appsHeader lists the apps a pipeline deploys and the sites each runs at ("" when
// the configuration has none).
func (g *generator) appsHeader() string {
	if len(g.topo.Apps) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("#\n# Apps (one folder each, deployed by each site's deploy job with the built-in stacks;\n")
	b.WriteString("# `sitectl deploy --app NAME --all` deploys one by hand):\n")
	for _, a := range g.topo.Apps {
		var at []string
		for sn := range a.Sites {
			at = append(at, sn)
		}
		sort.Strings(at)
		folder := filepath.ToSlash(filepath.Dir(a.File))
		if g.opts.AppsDir != "" {
			folder = path.Join(g.opts.AppsDir, a.Name)
		}
		fmt.Fprintf(&b, "#   %s (%s/) at %s\n", a.Name, folder, strings.Join(at, ", "))
	}
	return b.String()
}

// appsAt names the apps site runs, for its deploy job's comment ("" for none).
func (g *generator) appsAt(site string) string {
	var names []string
	for _, a := range g.topo.AppsAt(site) {
		names = append(names, a.Name)
	}
	if len(names) == 0 {
		return ""
	}
	return " Its apps: " + strings.Join(names, ", ") + "."
}
