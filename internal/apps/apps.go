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
	"bytes"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"
	"gopkg.in/yaml.v3"

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
	Service  string               `yaml:"service"`
	Port     int                  `yaml:"port"`
	Sites    any                  `yaml:"sites"`
	Replicas *int                 `yaml:"replicas"`
	Image    any                  `yaml:"image"`
	Health   health               `yaml:"health"`
	Metrics  metrics              `yaml:"metrics"`
	Routes   []route              `yaml:"routes"`
	Site     map[string]overrides `yaml:"site"`
	Env      map[string]overrides `yaml:"env"`
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
	Path  string   `yaml:"path"`
	Hosts []string `yaml:"hosts"`
	At    string   `yaml:"at"`
}

type overrides struct {
	Replicas *int   `yaml:"replicas"`
	Image    string `yaml:"image"`
}

// valueKeys are the keys an app takes from the sites' values.<app>.
var valueKeys = []string{"image", "replicas"}

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
	c.ps = append(c.ps, sites.Problem{Severity: sites.SevError, File: file, Site: site, Key: key, Message: fmt.Sprintf(format, args...)})
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
	if len(c.ps) > 0 {
		return nil, c.ps
	}
	return out, nil
}

func loadApp(c *collector, opts Options, name string) *sites.App {
	topo := opts.Topo
	folder := filepath.Join(opts.Dir, name)
	switch {
	case slices.Contains(opts.Builtin, name):
		c.errf(folder, "", "", "app %q is named like a built-in stack (%s); rename the folder", name, strings.Join(opts.Builtin, ", "))
		return nil
	case !nameRE.MatchString(name):
		c.errf(folder, "", "", "app name %q must be lower case letters, digits and dashes, starting with a letter (at most 31); rename the folder", name)
		return nil
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
		return nil
	}
	rel := filepath.Join(folder, file)
	info, _ := os.Stat(rel)
	if info.Size() > sites.MaxFileBytes {
		c.errf(rel, "", "", "is %d bytes; app compose files are limited to %d bytes (1 MiB)", info.Size(), sites.MaxFileBytes)
		return nil
	}
	b, err := os.ReadFile(rel)
	if err != nil {
		c.errf(rel, "", "", "cannot read: %v", err)
		return nil
	}
	dict, err := loader.ParseYAML(b)
	if err != nil {
		c.errf(rel, "", "", "not a compose file: %v", err)
		return nil
	}
	// The file as `docker stack deploy` would load it: docker/cli's loader.
	cfg, err := loader.Load(composetypes.ConfigDetails{
		WorkingDir:  folder,
		ConfigFiles: []composetypes.ConfigFile{{Filename: rel, Config: dict}},
		Environment: envMap(opts.Environ),
	})
	if err != nil {
		c.errf(rel, "", "", "docker/cli's compose loader refuses it: %v; fix the compose file (`docker stack config -c %s` shows the same)", err, rel)
		return nil
	}
	var d decl
	if raw, ok := dict[Extension]; ok {
		if !decodeStrict(c, rel, raw, &d) {
			return nil
		}
	}
	a := &sites.App{Name: name, File: rel, Compose: b, Port: d.Port, Liveness: d.Health.Liveness, Readiness: d.Health.Readiness,
		MetricsPort: d.Metrics.Port, MetricsPath: d.Metrics.Path, MetricsPublished: d.Metrics.Published, Sites: map[string]sites.AppSite{}}
	before := len(c.ps)
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
	if svc != nil {
		a.Service = svc.Name
	}
	checkPaths(c, rel, a, d)
	sitesBefore := len(c.ps)
	runs := selectSites(c, rel, topo, d.Sites)
	sitesOK := len(c.ps) == sitesBefore
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
		a.Routes = append(a.Routes, sites.AppRoute{Path: r.Path, Hosts: r.Hosts, At: at})
	}
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
	checkSecrets(c, rel, topo, runs, dict, cfg)
	if svc != nil && a.MetricsPort > 0 {
		checkHostPort(c, rel, topo, runs, svc, a)
	}
	if svc == nil || len(c.ps) > before {
		return nil
	}
	unpinned := map[string][]string{} // problem → sites
	var order []string
	for _, sn := range runs {
		site := topo.Site(sn)
		as, from, ok := resolve(c, rel, topo, site, a, d, svc)
		if !ok {
			continue
		}
		a.Sites[sn] = as
		if topo.Env == "production" {
			if msg := productionImage(as.Image); msg != "" {
				k := fmt.Sprintf("image %q (from %s): %s", as.Image, from, msg)
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
	if len(c.ps) > before {
		return nil
	}
	return a
}

func serviceNames(cfg *composetypes.Config) []string {
	var out []string
	for _, s := range cfg.Services {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// decodeStrict decodes the extension into d, refusing unknown keys.
func decodeStrict(c *collector, rel string, raw any, d *decl) bool {
	b, err := yaml.Marshal(raw)
	if err != nil {
		c.errf(rel, "", Extension, "cannot read: %v", err)
		return false
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(d); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n")
		msg = regexp.MustCompile(`line \d+: `).ReplaceAllString(strings.TrimSpace(msg), "")
		c.errf(rel, "", Extension, "%s (allowed keys: service, port, sites, replicas, image, health, metrics, routes, site, env)", msg)
		return false
	}
	return true
}

func checkPaths(c *collector, rel string, a *sites.App, d decl) {
	for key, p := range map[string]string{"health.liveness": a.Liveness, "health.readiness": a.Readiness, "metrics.path": a.MetricsPath} {
		if p != "" && !strings.HasPrefix(p, "/") {
			c.errf(rel, "", Extension+"."+key, "%q: an HTTP path starts with /", p)
		}
	}
	for key, p := range map[string]int{"port": d.Port, "metrics.port": d.Metrics.Port, "metrics.published": d.Metrics.Published} {
		if p < 0 || p > 65535 {
			c.errf(rel, "", Extension+"."+key, "%d is not a port (1-65535)", p)
		}
	}
	if a.MetricsPort > 0 {
		if a.MetricsPath == "" {
			a.MetricsPath = "/metrics"
		}
		if a.MetricsPublished == 0 {
			a.MetricsPublished = a.MetricsPort
		}
	}
}

// selectSites resolves x-sitectl.sites: all (the default), hub, spokes, or a list
// of site names and those roles. The result is in topology order.
func selectSites(c *collector, rel string, topo *sites.Topology, v any) []string {
	var items []string
	switch x := v.(type) {
	case nil:
		items = []string{"all"}
	case string:
		items = []string{x}
	case []any:
		for _, e := range x {
			items = append(items, fmt.Sprint(e))
		}
	default:
		c.errf(rel, "", Extension+".sites", "must be all, hub, spokes or a list of sites and roles, not %T", v)
		return nil
	}
	want := map[string]bool{}
	for _, it := range items {
		switch it {
		case "all":
			for _, s := range topo.Sites {
				want[s.Name] = true
			}
		case "hub":
			want[topo.Hub] = true
		case "spokes":
			for _, s := range topo.Spokes() {
				want[s.Name] = true
			}
		default:
			if topo.Site(it) == nil {
				c.errf(rel, "", Extension+".sites", "%q is not a site or role (allowed: all, hub, spokes, %s)", it, strings.Join(topo.SiteNames(), ", "))
				continue
			}
			want[it] = true
		}
	}
	var out []string
	for _, s := range topo.Sites {
		if want[s.Name] {
			out = append(out, s.Name)
		}
	}
	return out
}

var secretEnvRE = regexp.MustCompile(`(?i)(password|passwd|secret|token|api_?key|private_?key|credentials?)$`)

// checkSecrets refuses a secret whose value would live in the app folder or the
// compose file: secrets come by reference (file: secrets/<name>, the site's
// secrets.<name>), or are external.
func checkSecrets(c *collector, rel string, topo *sites.Topology, runs []string, dict map[string]any, cfg *composetypes.Config) {
	raw, _ := dict["secrets"].(map[string]any)
	for _, key := range slices.Sorted(maps.Keys(raw)) {
		def, _ := raw[key].(map[string]any)
		if ext, _ := def["external"].(bool); ext {
			continue
		}
		file, _ := def["file"].(string)
		name, ok := strings.CutPrefix(path.Clean(file), "secrets/")
		if !ok || file == "" {
			c.errf(rel, "", "secrets."+key, "an inline secret: its value would come from %q in the app folder; name a site secret instead (file: secrets/<name>, with secrets.<name>: {env: VAR} or {file: path} in the site config) or make it external", file)
			continue
		}
		var lacking []string
		for _, sn := range runs {
			if _, ok := topo.Site(sn).Secrets[name]; !ok {
				lacking = append(lacking, sn)
			}
		}
		if len(lacking) > 0 {
			c.errf(rel, "", "secrets."+key, "%s has no secret %q: add secrets.%s ({env: VAR} or {file: path}) to its config (defaults.yaml for every site)", sitesPhrase(lacking), name, name)
		}
	}
	for _, s := range cfg.Services {
		for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
			v := s.Environment[k]
			if v != nil && *v != "" && secretEnvRE.MatchString(k) {
				c.errf(rel, "", "services."+s.Name+".environment."+k, "an inline secret (value not shown): pass it as a compose secret (file: secrets/<name>) and point the app at /run/secrets/<name>, e.g. %s_FILE", k)
			}
		}
	}
}

// resolve layers an app's settings for one site: the compose file, x-sitectl,
// x-sitectl.site.<site>, x-sitectl.env.<env>, then the site's values.<app>.
func resolve(c *collector, rel string, topo *sites.Topology, site *sites.Site, a *sites.App, d decl, svc *composetypes.ServiceConfig) (sites.AppSite, string, bool) {
	as := sites.AppSite{Replicas: 1, Image: svc.Image}
	imageFrom := rel + ": services." + svc.Name + ".image"
	if svc.Deploy.Replicas != nil {
		as.Replicas = int(*svc.Deploy.Replicas)
	}
	if d.Replicas != nil {
		as.Replicas = *d.Replicas
	}
	switch x := d.Image.(type) {
	case nil:
	case string:
		as.Image, imageFrom = x, rel+": "+Extension+".image"
	case map[string]any:
		if v, ok := x[topo.Env]; ok {
			as.Image, imageFrom = fmt.Sprint(v), rel+": "+Extension+".image."+topo.Env
		} else if v, ok := x["default"]; ok {
			as.Image, imageFrom = fmt.Sprint(v), rel+": "+Extension+".image.default"
		}
	default:
		c.errf(rel, "", Extension+".image", "must be an image reference or a map of environment (or default) to reference, not %T", d.Image)
		return as, imageFrom, false
	}
	for _, o := range []struct {
		ov  overrides
		key string
	}{{d.Site[site.Name], Extension + ".site." + site.Name}, {d.Env[topo.Env], Extension + ".env." + topo.Env}} {
		if o.ov.Replicas != nil {
			as.Replicas = *o.ov.Replicas
		}
		if o.ov.Image != "" {
			as.Image, imageFrom = o.ov.Image, rel+": "+o.key+".image"
		}
	}
	vals := site.Values[a.Name]
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		key := "values." + a.Name + "." + k
		origin := topo.Origin(site.Name, key)
		switch k {
		case "image":
			as.Image, imageFrom = fmt.Sprint(vals[k]), origin+": "+key
		case "replicas":
			n, err := strconv.Atoi(fmt.Sprint(vals[k]))
			if err != nil {
				c.errf(origin, site.Name, key, "%q is not a whole number of replicas", fmt.Sprint(vals[k]))
				return as, imageFrom, false
			}
			as.Replicas = n
		default:
			c.errf(origin, site.Name, key, "unknown key for app %s (allowed: %s)", a.Name, strings.Join(valueKeys, ", "))
			return as, imageFrom, false
		}
	}
	if as.Replicas < 0 {
		c.errf(rel, site.Name, Extension+".replicas", "%d replicas at %s: must be 0 or more", as.Replicas, site.Name)
		return as, imageFrom, false
	}
	if img, ok := siteImage(c, rel, site, as.Image, imageFrom); ok {
		as.Image = img
	} else {
		return as, imageFrom, false
	}
	if as.Image == "" {
		c.errf(rel, site.Name, "services."+svc.Name+".image", "no image for %s at %s: set the service's image or %s.image", a.Name, site.Name, Extension)
		return as, imageFrom, false
	}
	return as, imageFrom, true
}

func sitesPhrase(list []string) string {
	if len(list) == 1 {
		return "site " + list[0]
	}
	return "sites " + strings.Join(list, ", ")
}

// productionImage says what makes ref unfit for production ("" if nothing).
func productionImage(ref string) string {
	if strings.Contains(ref, "${") {
		return ""
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "not an image reference (" + err.Error() + ")"
	}
	if _, ok := named.(reference.Digested); ok {
		return ""
	}
	t, ok := named.(reference.Tagged)
	switch {
	case !ok:
		return "untagged (it means latest)"
	case t.Tag() == "latest":
		return "tagged latest"
	}
	return ""
}

// checkRoutes refuses two apps (or an app and a built-in route) claiming the same
// host and path at one site.
func checkRoutes(c *collector, topo *sites.Topology, list []*sites.App) {
	type claim struct{ app, file string }
	type clash struct{ file, key, msg string }
	clashes := map[clash][]string{}
	var order []clash
	builtin := []string{"/api", "/admin"}
	for _, s := range topo.Sites {
		claimed := map[string]claim{}
		if s.HasStack("kong") {
			for _, p := range builtin {
				claimed["|"+p] = claim{app: "the built-in django-api route"}
			}
		}
		for ai, a := range list {
			for i, r := range a.Routes {
				_, runs := a.Sites[s.Name]
				if r.At == sites.RouteLocal && !runs {
					continue
				}
				hosts := r.Hosts
				if len(hosts) == 0 {
					hosts = []string{""}
				}
				for _, h := range hosts {
					k := h + "|" + r.Path
					if prev, dup := claimed[k]; dup && prev.app != a.Name {
						where := prev.app
						if prev.file != "" {
							where = "app " + prev.app + " (" + prev.file + ")"
						}
						k := clash{a.File, fmt.Sprintf("%s.routes[%d].path", Extension, i), fmt.Sprintf("route %s%s is already claimed by %s", h, r.Path, where)}
						if clashes[k] == nil {
							order = append(order, k)
						}
						clashes[k] = append(clashes[k], s.Name)
						continue
					}
					claimed[k] = claim{app: list[ai].Name, file: a.File}
				}
			}
		}
	}
	for _, k := range order {
		c.errf(k.file, "", k.key, "at %s: %s; give one of them another path or host", sitesPhrase(clashes[k]), k.msg)
	}
}

func envMap(environ []string) map[string]string {
	if environ == nil {
		environ = os.Environ()
	}
	return sites.EnvMap(environ)
}

// checkHostPort refuses start-first updates of a service whose metrics port sitectl
// publishes in host mode: the new task cannot bind the port the old one holds on
// its node, so the update never starts where a node runs one task (seen on the lab).
func checkHostPort(c *collector, rel string, topo *sites.Topology, runs []string, svc *composetypes.ServiceConfig, a *sites.App) {
	var host []string
	for _, sn := range runs {
		if topo.Site(sn).Deploy.PublishMode == "host" {
			host = append(host, sn)
		}
	}
	if len(host) == 0 {
		return
	}
	for key, uc := range map[string]*composetypes.UpdateConfig{"update_config": svc.Deploy.UpdateConfig, "rollback_config": svc.Deploy.RollbackConfig} {
		if uc != nil && uc.Order == "start-first" {
			c.errf(rel, "", "services."+svc.Name+".deploy."+key+".order", "start-first at %s, whose deploy.publish_mode is host: the new task cannot bind the metrics port %d the old one holds on its node; use order: stop-first (or publish_mode: ingress)", sitesPhrase(host), a.MetricsPublished)
		}
	}
}
