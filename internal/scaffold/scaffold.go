// Package scaffold writes a new configuration repository of the operator's own
// (`sitectl init DIR`): sites/ (a file per site, defaults, environment overlays, the
// replicated schema), apps/ with one example app, and the GitLab pipelines that
// install sitectl pinned. What it writes validates: it is checked in a scratch
// folder before anything is written to DIR.
package scaffold

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/sitectl/sitectl/ci"
	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/sites"
)

//go:embed files
var files embed.FS

// Site is one site of the new repository.
type Site struct {
	Name string
	Role string // hub or spoke
	LAN  netip.Prefix
}

// Options say what to scaffold.
type Options struct {
	// Sites; none means DefaultSites.
	Sites []Site
	// Version is the sitectl version the pipelines install (go install @Version).
	Version string
	// Source names where Sites came from in errors ("--site").
	Source string
	// Envs are the environments to lay out (overlays and pipelines), a subset of
	// Envs in their order; none means all of them.
	Envs []string
}

// envs is o.Envs, or every environment.
func (o Options) envs() []string {
	if len(o.Envs) == 0 {
		return Envs
	}
	return o.Envs
}

// CheckEnvs refuses environments a new repository cannot have: each one of Envs,
// once, at least one.
func CheckEnvs(list []string, source string) error {
	if len(list) == 0 {
		return fmt.Errorf("%s: no environment: name at least one of %s", source, strings.Join(Envs, ", "))
	}
	for i, e := range list {
		if !slices.Contains(Envs, e) {
			return fmt.Errorf("%s: environment %q: allowed: %s", source, e, strings.Join(Envs, ", "))
		}
		if slices.Contains(list[:i], e) {
			return fmt.Errorf("%s: environment %s is given twice", source, e)
		}
	}
	return nil
}

// Empty refuses a folder sitectl init may not write into: one that exists and
// holds anything.
func Empty(dir string) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty (%d entries): sitectl init writes a new repository only into an empty or new folder", dir, len(entries))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Envs are the environments a new repository has.
var Envs = []string{"dev", "staging", "production"}

// DefaultSites are the sites of a repository made without --site: a hub and two spokes.
func DefaultSites() []Site {
	return []Site{
		{Name: "hub", Role: "hub", LAN: netip.MustParsePrefix("10.30.0.0/24")},
		{Name: "branch-a", Role: "spoke", LAN: netip.MustParsePrefix("10.10.0.0/24")},
		{Name: "branch-b", Role: "spoke", LAN: netip.MustParsePrefix("10.20.0.0/24")},
	}
}

var siteNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// ParseSite reads NAME:ROLE:LAN (e.g. douala:spoke:10.10.0.0/24).
func ParseSite(s string) (Site, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Site{}, fmt.Errorf("%q: want NAME:ROLE:LAN, e.g. douala:spoke:10.10.0.0/24", s)
	}
	name, role, lan := parts[0], parts[1], parts[2]
	if !siteNameRE.MatchString(name) {
		return Site{}, fmt.Errorf("%q: site name %q must be lower case letters, digits and dashes, starting with a letter", s, name)
	}
	if role != "hub" && role != "spoke" {
		return Site{}, fmt.Errorf("%q: role %q: allowed: hub, spoke", s, role)
	}
	p, err := netip.ParsePrefix(lan)
	if err != nil || !p.Addr().Is4() || p.Bits() > 27 || p.Bits() < 8 {
		return Site{}, fmt.Errorf("%q: LAN %q must be an IPv4 network from /8 to /27 (e.g. 10.10.0.0/24)", s, lan)
	}
	return Site{Name: name, Role: role, LAN: p.Masked()}, nil
}

// CheckSites refuses a set of sites sitectl cannot deploy: one hub, distinct names
// and LANs, at most 10 sites; source names where they came from.
func CheckSites(list []Site, source string) error { return check(list, source) }

// check refuses a set of sites sitectl cannot deploy: one hub, distinct names and
// LANs, at most 10 sites.
func check(list []Site, source string) error {
	hubs := 0
	seen := map[string]bool{}
	for i, s := range list {
		if s.Role == "hub" {
			hubs++
		}
		if seen[s.Name] {
			return fmt.Errorf("%s: site %s is given twice", source, s.Name)
		}
		seen[s.Name] = true
		for _, o := range list[:i] {
			if o.LAN.Overlaps(s.LAN) {
				return fmt.Errorf("%s: the LANs of %s (%s) and %s (%s) overlap: give each site its own network", source, o.Name, o.LAN, s.Name, s.LAN)
			}
		}
	}
	switch {
	case hubs != 1:
		return fmt.Errorf("%s: %d hubs: exactly one site is the hub (NAME:hub:LAN), the others spokes", source, hubs)
	case len(list) < 2:
		return fmt.Errorf("%s: one site: give the hub and at least one spoke", source)
	case len(list) > 10:
		return fmt.Errorf("%s: %d sites: sitectl init lays out at most 10 (add more by hand afterwards)", source, len(list))
	}
	return nil
}

// Files renders the repository: path (slash-separated) → content.
func Files(o Options) (map[string][]byte, error) {
	if o.Source == "" {
		o.Source = "--site"
	}
	list := o.Sites
	if len(list) == 0 {
		list = DefaultSites()
	}
	if err := check(list, o.Source); err != nil {
		return nil, err
	}
	if err := CheckEnvs(o.envs(), "environments"); err != nil {
		return nil, err
	}
	if err := ci.CheckVersion(o.Version); err != nil {
		return nil, fmt.Errorf("the pipelines' sitectl version: %w", err)
	}
	out := map[string][]byte{
		"sites/defaults.yaml": sites.ExampleDefaults,
		"sites/schema.sql":    sites.ExampleSchema,
	}
	err := fs.WalkDir(files, "files", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		rel := strings.TrimPrefix(p, "files/")
		if rel == "gitignore" {
			rel = ".gitignore"
		}
		if env, ok := strings.CutPrefix(rel, "sites/env/"); ok && !slices.Contains(o.envs(), strings.TrimSuffix(env, ".yaml")) {
			return err
		}
		if rel == "README.md" {
			b = []byte(strings.NewReplacer("(dev, staging, production)", "("+strings.Join(o.envs(), ", ")+")",
				"--env dev", "--env "+o.envs()[0]).Replace(string(b)))
		}
		out[rel] = b
		return err
	})
	if err != nil {
		return nil, err
	}
	hub := list[slices.IndexFunc(list, func(s Site) bool { return s.Role == "hub" })]
	for i, s := range list {
		out["sites/"+s.Name+".yaml"] = siteFile(i, s, hub, list)
	}
	var inc strings.Builder
	inc.WriteString("# The deploy pipelines, one per environment, generated by sitectl from sites/ and\n")
	inc.WriteString("# apps/ (see the command at the top of each). Regenerate them when those change;\n")
	inc.WriteString("# each pipeline's validate stage fails while its file is out of date.\n")
	inc.WriteString("include:\n")
	for _, env := range o.envs() {
		fmt.Fprintf(&inc, "  - local: ci/%s.yml\n", env)
	}
	out[".gitlab-ci.yml"] = []byte(inc.String())
	return out, nil
}

// siteFile lays out one site: one manager node at the LAN's .11, the gateway at .1,
// swarm and overlay ranges of its own, tunnels between the hub and each spoke.
func siteFile(i int, s, hub Site, list []Site) []byte {
	base := s.LAN.Addr().As4()
	at := func(host byte) string {
		return netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + host}).String()
	}
	node, gw := at(11), at(1)
	var peers []string
	if s.Role == "hub" {
		for _, o := range list {
			if o.Role == "spoke" {
				peers = append(peers, o.Name)
			}
		}
	} else {
		peers = []string{hub.Name}
	}
	sort.Strings(peers)
	priority := 1
	if s.Role == "hub" {
		priority = 2
	}
	pool, nets := 150+i*10, 151+i*10
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: a %s (written by sitectl init: set your addresses, nodes and engine access).\n", s.Name, s.Role)
	fmt.Fprintf(&b, "role: %s\ndescription: %s\nlan: %s\n", s.Role, s.Name, s.LAN)
	fmt.Fprintf(&b, "engine:\n  host: ssh://ops@%s\n", node)
	fmt.Fprintf(&b, "nodes:\n  - name: %s-node1\n    role: manager\n    address: %s\n    labels: {role: app, site: %s}\n", s.Name, node, s.Name)
	fmt.Fprintf(&b, "swarm:\n  default_addr_pool: [10.%d.0.0/16]\n", pool)
	fmt.Fprintf(&b, "networks:\n  edge: {subnet: 10.%d.0.0/24, encrypted: false}\n  app: {subnet: 10.%d.1.0/24, encrypted: true}\n  data: {subnet: 10.%d.2.0/24, encrypted: true}\n", nets, nets, nets)
	fmt.Fprintf(&b, "gateway:\n  id: gw.%s.example.org\n  # A documentation address: set the gateway's public address.\n  wan_address: 203.0.113.%d\n  lan_address: %s\n  vici: ssh://ops@%s/var/run/charon.vici\n", s.Name, 10+i, gw, gw)
	fmt.Fprintf(&b, "tunnel:\n  peers: [%s]\n", strings.Join(peers, ", "))
	fmt.Fprintf(&b, "postgres:\n  host: %s\n", node)
	fmt.Fprintf(&b, "mongo:\n  members:\n    - host: %s:27017\n      priority: %d\n", node, priority)
	return []byte(b.String())
}

// Write scaffolds dir (created if missing; refused unless empty): the files are
// rendered, checked in a scratch folder (every environment loads and validates with
// its apps, and each pipeline is generated from them), and only then written.
func Write(dir string, o Options) ([]string, error) {
	if err := Empty(dir); err != nil {
		return nil, err
	}
	out, err := Files(o)
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp("", "sitectl-init-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	if err := writeAll(scratch, out); err != nil {
		return nil, err
	}
	for _, env := range o.envs() {
		b, err := pipeline(scratch, env, o.Version)
		if err != nil {
			return nil, fmt.Errorf("the new repository does not validate (a bug in sitectl init, or sites that cannot be laid out): %w", err)
		}
		out["ci/"+env+".yml"] = b
	}
	if err := writeAll(dir, out); err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(out))
	for p := range out {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, nil
}

// pipeline loads env of the repository at root (sites and apps) and generates its
// pipeline, as `sitectl ci generate --env ENV --out ci/ENV.yml` run there would.
func pipeline(root, env, version string) ([]byte, error) {
	cfg := filepath.Join(root, "sites")
	names, err := apps.Names(filepath.Join(root, "apps"))
	if err != nil {
		return nil, err
	}
	topo, err := sites.Load(sites.Options{Dir: cfg, Env: env, Environ: []string{}, KnownStacks: append(names, sites.KnownStacks...)})
	if err != nil {
		return nil, err
	}
	list, ps := apps.Load(apps.Options{Dir: filepath.Join(root, "apps"), Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		return nil, ps
	}
	topo.Apps = list
	for _, a := range list {
		// As the CLI names them, run from the repository root.
		a.File = path.Join("apps", a.Name, filepath.Base(a.File))
	}
	return ci.Render(topo, ci.Options{Version: version, Out: "ci/" + env + ".yml"})
}

func writeAll(dir string, out map[string][]byte) error {
	for p, b := range out {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
