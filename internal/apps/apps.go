// Package apps reads the operator's apps: one folder per app under the apps
// directory (default <config-dir>/../apps), each holding a compose file that
// `docker stack deploy` accepts as it is, plus an `x-sitectl` extension saying where
// the app runs and how sitectl wires it (replicas, image per environment, health
// paths, metrics port, routes). Load validates every app against the topology and
// resolves its per-site settings (x-sitectl < x-sitectl.site.<site> <
// x-sitectl.env.<env> < the sites' values.<app>, itself defaults < site < env <
// SITECTL_* < --set); stacks renders each app like a built-in stack.
package apps

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"

	"github.com/sitectl/sitectl/internal/composeload"
	"github.com/sitectl/sitectl/sites"
)

// Extension is the compose file's top-level key holding what sitectl reads.
const Extension = "x-sitectl"

// ComposeFiles are the names an app's compose file may have, in the order looked for.
var ComposeFiles = []string{"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"}

// DefaultDir is the apps directory for a config dir: a sibling named apps.
func DefaultDir(configDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(configDir)), "apps")
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// Names lists the app folders of dir, sorted; a missing dir has none.
func Names(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read apps dir %s: %w (set --apps-dir or SITECTL_APPS_DIR)", dir, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// decl is the x-sitectl extension.
type decl struct {
	Service   string               `yaml:"service"`
	Port      int                  `yaml:"port"`
	Sites     any                  `yaml:"sites"`
	Replicas  *int                 `yaml:"replicas"`
	Image     any                  `yaml:"image"`
	Health    health               `yaml:"health"`
	Metrics   metrics              `yaml:"metrics"`
	Routes    []route              `yaml:"routes"`
	Site      map[string]overrides `yaml:"site"`
	Env       map[string]overrides `yaml:"env"`
	Database  any                  `yaml:"database"`
	Resources *resources           `yaml:"resources"`
	Update    *policy              `yaml:"update"`
	Rollback  *policy              `yaml:"rollback"`
	Canary    *canaryDecl          `yaml:"canary"`
	After     []string             `yaml:"after"`
	Placement string               `yaml:"placement"`
	Mongo     bool                 `yaml:"mongo"`
	RateLimit int                  `yaml:"rate_limit"`
}

type health struct {
	Liveness  string `yaml:"liveness"`
	Readiness string `yaml:"readiness"`
}

type metrics struct {
	Port      int    `yaml:"port"`
	Path      string `yaml:"path"`
	Published int    `yaml:"published"`
}

type route struct {
	Path     string   `yaml:"path"`
	Hosts    []string `yaml:"hosts"`
	At       string   `yaml:"at"`
	Failover string   `yaml:"failover"`
}

type overrides struct {
	Replicas    *int           `yaml:"replicas"`
	Image       string         `yaml:"image"`
	Canary      *canaryDecl    `yaml:"canary"`
	RateLimit   *int           `yaml:"rate_limit"`
	Healthcheck map[string]any `yaml:"healthcheck"`
}

// valueKeys are the keys an app takes from the sites' values.<app>.
var valueKeys = []string{"healthcheck", "image", "rate_limit", "replicas"}

// Options say where apps are and what they are checked against.
type Options struct {
	// Dir is the apps directory; a missing one holds no app.
	Dir  string
	Topo *sites.Topology
	// Environ interpolates ${VAR} when the compose file is checked, as deploy does.
	Environ []string
	// Builtin are the built-in stack names no app may take (sites.KnownStacks when nil).
	Builtin []string
}

type collector struct{ ps sites.Problems }

func (c *collector) errf(file, site, key, format string, args ...any) {
	p := sites.Problem{Severity: sites.SevError, File: file, Site: site, Key: key, Message: fmt.Sprintf(format, args...)}
	if slices.Contains(c.ps, p) {
		return // the same at several sites (an environment's layer): said once
	}
	c.ps = append(c.ps, p)
}

// Load reads and validates every app of opts.Dir for opts.Topo's environment. It
// returns every problem found (as sites.Problems, naming the app's file and key);
// apps are returned only when there is none.
func Load(opts Options) ([]*sites.App, sites.Problems) {
	if opts.Builtin == nil {
		opts.Builtin = sites.KnownStacks
	}
	c := &collector{}
	names, err := Names(opts.Dir)
	if err != nil {
		c.errf(opts.Dir, "", "", "%v", err)
		return nil, c.ps
	}
	var out []*sites.App
	for _, name := range names {
		if a := loadApp(c, opts, name); a != nil {
			out = append(out, a)
		}
	}
	checkRoutes(c, opts.Topo, out)
	checkRoles(c, out)
	checkAfter(c, names, out)
	if len(c.ps) > 0 {
		return nil, c.ps
	}
	return out, nil
}

// loadApp reads and checks one app folder; nil when it has a problem (reported).
func loadApp(c *collector, opts Options, name string) *sites.App {
	topo := opts.Topo
	src, ok := readCompose(c, opts, name)
	if !ok {
		return nil
	}
	rel, cfg := src.rel, src.cfg
	var d decl
	if raw, ok := src.dict[Extension]; ok {
		if !decodeStrict(c, rel, raw, &d) {
			return nil
		}
	}
	a := &sites.App{Name: name, File: rel, Compose: src.b, Port: d.Port, Liveness: d.Health.Liveness, Readiness: d.Health.Readiness,
		MetricsPort: d.Metrics.Port, MetricsPath: d.Metrics.Path, MetricsPublished: d.Metrics.Published, Sites: map[string]sites.AppSite{}, After: slices.Clone(d.After)}
	before := len(c.ps)
	svc := pickService(c, rel, d, cfg)
	if svc != nil {
		a.Service = svc.Name
	}
	checkPaths(c, rel, a, d)
	sitesBefore := len(c.ps)
	runs := selectSites(c, rel, topo, d.Sites)
	sitesOK := len(c.ps) == sitesBefore
	checkAppRoutes(c, rel, topo, a, d, runs, sitesOK)
	checkSiteAndEnvKeys(c, rel, topo, d, runs, sitesOK)
	checkSecrets(c, rel, topo, runs, src.dict, cfg)
	if sitesOK && svc != nil {
		a.Database = checkDatabase(c, rel, name, topo, d.Database, runs, svc, src.dict)
	}
	if svc != nil {
		checkPlacementAndMongo(c, rel, topo, a, d, svc)
	}
	a.Resources = checkResources(c, rel, d.Resources)
	a.Update = checkPolicy(c, rel, d.Update, false)
	a.Rollback = checkPolicy(c, rel, d.Rollback, true)
	if svc != nil {
		a.EndpointMode = svc.Deploy.EndpointMode
		checkCanaryShape(c, rel, a, d, svc, cfg)
	}
	if svc != nil && a.MetricsPort > 0 {
		checkHostPort(c, rel, topo, runs, svc, a)
	}
	if svc == nil || len(c.ps) > before {
		return nil
	}
	resolveSites(c, rel, topo, a, d, svc, runs)
	if len(c.ps) > before {
		return nil
	}
	return a
}

// composeSource is an app's compose file, read.
type composeSource struct {
	rel  string // the file, named in messages
	b    []byte
	dict map[string]any
	cfg  *composetypes.Config // as docker stack deploy would load it
}

// readCompose finds the app's compose file, reads it and loads it with docker/cli's
// loader, as `docker stack deploy` would.
func readCompose(c *collector, opts Options, name string) (composeSource, bool) {
	folder := filepath.Join(opts.Dir, name)
	switch {
	case slices.Contains(opts.Builtin, name):
		c.errf(folder, "", "", "app %q is named like a built-in stack (%s); rename the folder", name, strings.Join(opts.Builtin, ", "))
		return composeSource{}, false
	case !nameRE.MatchString(name):
		c.errf(folder, "", "", "app name %q must be lower case letters, digits and dashes, starting with a letter (at most 31); rename the folder", name)
		return composeSource{}, false
	}
	var file string
	for _, f := range ComposeFiles {
		if info, err := os.Stat(filepath.Join(folder, f)); err == nil && info.Mode().IsRegular() {
			file = f
			break
		}
	}
	if file == "" {
		c.errf(folder, "", "", "no compose file: an app folder holds one of %s", strings.Join(ComposeFiles, ", "))
		return composeSource{}, false
	}
	rel := filepath.Join(folder, file)
	info, _ := os.Stat(rel)
	if info.Size() > sites.MaxFileBytes {
		c.errf(rel, "", "", "is %d bytes; app compose files are limited to %d bytes (1 MiB)", info.Size(), sites.MaxFileBytes)
		return composeSource{}, false
	}
	b, err := os.ReadFile(rel)
	if err != nil {
		c.errf(rel, "", "", "cannot read: %v", err)
		return composeSource{}, false
	}
	dict, err := loader.ParseYAML(b)
	if err != nil {
		c.errf(rel, "", "", "not a compose file: %v", err)
		return composeSource{}, false
	}
	// The file as `docker stack deploy` would load it: docker/cli's loader.
	cfg, err := composeload.Load(composetypes.ConfigDetails{
		WorkingDir:  folder,
		ConfigFiles: []composetypes.ConfigFile{{Filename: rel, Config: dict}},
		Environment: envMap(opts.Environ),
	})
	if err != nil {
		c.errf(rel, "", "", "docker/cli's compose loader refuses it: %v; fix the compose file (`docker stack config -c %s` shows the same)", err, rel)
		return composeSource{}, false
	}
	return composeSource{rel: rel, b: b, dict: dict, cfg: cfg}, true
}

// pickService is the service x-sitectl applies to: the one it names, or the only
// one; nil when neither (reported).
func pickService(c *collector, rel string, d decl, cfg *composetypes.Config) *composetypes.ServiceConfig {
	var svc *composetypes.ServiceConfig
	switch {
	case d.Service != "":
		for i := range cfg.Services {
			if cfg.Services[i].Name == d.Service {
				svc = &cfg.Services[i]
			}
		}
		if svc == nil {
			c.errf(rel, "", Extension+".service", "%q is not a service of the compose file (services: %s)", d.Service, strings.Join(serviceNames(cfg), ", "))
		}
	case len(cfg.Services) == 1:
		svc = &cfg.Services[0]
	default:
		c.errf(rel, "", Extension+".service", "the compose file has %d services (%s): name the one routes, replicas, image and metrics apply to", len(cfg.Services), strings.Join(serviceNames(cfg), ", "))
	}
	return svc
}

// checkAppRoutes checks the app's routes and sets a.Routes.
func checkAppRoutes(c *collector, rel string, topo *sites.Topology, a *sites.App, d decl, runs []string, sitesOK bool) {
	for i, r := range d.Routes {
		key := fmt.Sprintf("%s.routes[%d]", Extension, i)
		at := r.At
		if at == "" {
			at = sites.RouteLocal
		}
		switch {
		case !strings.HasPrefix(r.Path, "/"):
			c.errf(rel, "", key+".path", "%q: a route's path starts with / (e.g. /notes)", r.Path)
		case at != sites.RouteLocal && at != sites.RouteHub:
			c.errf(rel, "", key+".at", "%q: allowed: local (every site that runs the app serves it) or hub (spokes forward it to the hub)", r.At)
		case a.Port == 0:
			c.errf(rel, "", Extension+".port", "the app has routes but no port: set %s.port to the container port %s listens on", Extension, a.Service)
		case at == sites.RouteHub && sitesOK && topo.Hub != "" && !slices.Contains(runs, topo.Hub):
			c.errf(rel, "", key+".at", "route %s is forwarded to the hub %s, which does not run the app (it runs at %s): add %s to %s.sites or serve the route locally", r.Path, topo.Hub, strings.Join(runs, ", "), topo.Hub, Extension)
		}
		switch {
		case r.Failover != "" && r.Failover != sites.FailoverPeers:
			c.errf(rel, "", key+".failover", "%q: allowed: peers (the site's Kong sends the route to peer sites while the app is not ready there), or leave it out", r.Failover)
		case r.Failover != "" && at != sites.RouteLocal:
			c.errf(rel, "", key+".failover", "route %s is served by the hub only (at: hub): failover applies to routes every site serves itself; drop failover or at", r.Path)
		}
		a.Routes = append(a.Routes, sites.AppRoute{Path: r.Path, Hosts: r.Hosts, At: at, Failover: r.Failover})
	}
	checkFailoverProbe(c, rel, a)
}

// checkSiteAndEnvKeys checks that x-sitectl.site names sites that run the app and
// x-sitectl.env names environments.
func checkSiteAndEnvKeys(c *collector, rel string, topo *sites.Topology, d decl, runs []string, sitesOK bool) {
	for sn := range d.Site {
		if topo.Site(sn) == nil {
			c.errf(rel, "", Extension+".site."+sn, "%q is not a site (sites: %s)", sn, strings.Join(topo.SiteNames(), ", "))
		} else if sitesOK && !slices.Contains(runs, sn) {
			c.errf(rel, sn, Extension+".site."+sn, "site %s does not run the app (it runs at %s): add it to %s.sites or drop these settings", sn, strings.Join(runs, ", "), Extension)
		}
	}
	if envs := sites.Environments(topo.Dir); len(envs) > 0 {
		for en := range d.Env {
			if !slices.Contains(envs, en) {
				c.errf(rel, "", Extension+".env."+en, "%q is not an environment (environments: %s)", en, strings.Join(envs, ", "))
			}
		}
	}
}

// resolveSites resolves the app's settings at every site that runs it into
// a.Sites; in production, an image that is not pinned is refused once for all the
// sites that would run it.
func resolveSites(c *collector, rel string, topo *sites.Topology, a *sites.App, d decl, svc *composetypes.ServiceConfig, runs []string) {
	unpinned := map[string][]string{} // problem → sites
	var order []string
	for _, sn := range runs {
		site := topo.Site(sn)
		as, from, ok := resolve(c, rel, topo, site, a, d, svc)
		if !ok || !resolveSiteLayers(c, rel, topo, site, a, d, &as) {
			continue
		}
		canary, canaryFrom, ok := resolveCanary(c, rel, topo, site, d)
		if !ok {
			continue
		}
		as.Canary = canary
		a.Sites[sn] = as
		if topo.Env != "production" {
			continue
		}
		images := [][2]string{{as.Image, from}}
		if canary != nil {
			images = append(images, [2]string{canary.Image, canaryFrom})
		}
		for _, img := range images {
			if msg := productionImage(img[0]); msg != "" {
				k := fmt.Sprintf("image %q (from %s): %s", img[0], img[1], msg)
				if unpinned[k] == nil {
					order = append(order, k)
				}
				unpinned[k] = append(unpinned[k], sn)
			}
		}
	}
	for _, k := range order {
		c.errf(rel, "", Extension+".image", "%s at %s; production deploys only a pinned image: set %s.image.production (or values.%s.image) to a versioned tag or a digest", k, strings.Join(unpinned[k], ", "), Extension, a.Name)
	}
}

func serviceNames(cfg *composetypes.Config) []string {
	var out []string
	for _, s := range cfg.Services {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

func envMap(environ []string) map[string]string {
	if environ == nil {
		environ = os.Environ()
	}
	return sites.EnvMap(environ)
}
