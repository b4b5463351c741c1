package sites

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
)

// File names inside the config directory.
const (
	DefaultsFile = "defaults.yaml"
	EnvDir       = "env"
	// CurrentEnvFile, when present in the config dir, names the environment used when
	// neither --env nor SITECTL_ENV is given (`sitectl lab up` writes "lab" there).
	CurrentEnvFile = ".sitectl-env"
)

// Options say where to load from and which overrides apply.
type Options struct {
	// Dir is the config directory (default ./sites).
	Dir string
	// FS, when set, is read instead of Dir on disk (tests, fuzzing); Dir still
	// names the files in messages.
	FS fs.FS
	// Env is the environment overlay (dev, staging, production, lab); empty means none.
	Env string
	// Environ is the process environment used for SITECTL_* overrides (os.Environ()
	// when nil).
	Environ []string
	// Set holds flag overrides, each "key=value" (every site) or "site:key=value".
	Set []string
	// KnownStacks overrides the stack names a site may list (KnownStacks when nil).
	KnownStacks []string
	// Context stops the load when done (SIGINT, SIGTERM); nil: never.
	Context context.Context
}

var siteNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// layer is one source of settings for one site.
type layer struct {
	origin string // "sites/douala.yaml", "env SITECTL_X", "flag --set x=y"
	data   map[string]any
}

// SiteNames lists the sites defined in dir (one <site>.yaml each), sorted.
func SiteNames(dir string) ([]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("read config dir %s: %w (set --config-dir or SITECTL_CONFIG_DIR)", dir, err)
	}
	var c collector
	names, err := scanSites(&c, os.DirFS(dir), dir)
	return names, err
}

// scanSites lists the site names of the config dir: every <site>.yaml but
// defaults.yaml, whatever it is (Load says what is wrong with one that is not a
// file). A <site>.yml is reported: sitectl reads only .yaml.
func scanSites(c *collector, fsys fs.FS, dir string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read config dir %s: %s (set --config-dir or SITECTL_CONFIG_DIR)", dir, plainError(err))
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		switch {
		case n == DefaultsFile:
		case strings.HasSuffix(n, ".yml"):
			c.errf(filepath.Join(dir, n), "", "", "sitectl reads only .yaml files: rename it %s (or move it out of the config dir)", strings.TrimSuffix(n, ".yml")+".yaml")
		case strings.HasSuffix(n, ".yaml"):
			names = append(names, strings.TrimSuffix(n, ".yaml"))
		}
	}
	sort.Strings(names)
	return names, nil
}

// Load reads, merges and validates every site of dir for one environment. On any
// error-severity problem it returns the Problems (all of them) as the error and a nil
// topology; warnings ride on Topology.Warnings.
func Load(opts Options) (*Topology, error) {
	opts = opts.withDefaults()
	fsys := opts.FS
	if fsys == nil {
		if _, err := os.Stat(opts.Dir); err != nil {
			return nil, fmt.Errorf("read config dir %s: %w (set --config-dir or SITECTL_CONFIG_DIR)", opts.Dir, err)
		}
		fsys = os.DirFS(opts.Dir)
	}
	l := &loader{ctx: opts.Context, fsys: fsys, opts: opts, c: &collector{}}
	c := l.c
	names, err := scanSites(c, fsys, opts.Dir)
	if err != nil {
		return nil, err
	}
	l.names = names
	l.readDefaults()
	l.readEnvOverlay()
	if len(names) == 0 {
		c.errf(filepath.Base(opts.Dir), "", "", "no site files (<site>.yaml) found in %s", opts.Dir)
	}

	flagLayers, flagProblems := parseSet(opts.Set, names)
	l.flagLayers = flagLayers
	c.ps = append(c.ps, flagProblems...)
	if err := l.ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading %s stopped: %w", opts.Dir, err)
	}

	topo := &Topology{Env: opts.Env, Dir: opts.Dir, origins: map[string]map[string]string{}}
	results := l.loadSites()
	if err := l.ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading %s stopped: %w", opts.Dir, err)
	}
	for i, name := range names {
		r := results[i]
		c.ps = append(c.ps, r.c.ps...)
		if r.site == nil {
			continue
		}
		r.site.Env = opts.Env
		topo.Sites = append(topo.Sites, r.site)
		topo.origins[name] = r.origins
	}
	validate(c, topo, opts, fsys, names)
	// A problem in a layer every site shares is one problem, not one per site.
	topo.shared = l.sharedOrigins()
	for i, p := range c.ps {
		if topo.shared[p.File] {
			c.ps[i].Site = ""
		}
	}
	c.ps = c.ps.sorted()
	if len(c.ps.Errors()) > 0 {
		return nil, c.ps
	}
	topo.Warnings = c.ps.Warnings()
	topo.build()
	return topo, nil
}

// withDefaults fills in the defaults of the unset options.
func (opts Options) withDefaults() Options {
	if opts.Dir == "" {
		opts.Dir = "sites"
	}
	if opts.Environ == nil {
		opts.Environ = os.Environ()
	}
	if opts.KnownStacks == nil {
		opts.KnownStacks = KnownStacks
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	return opts
}

// loader holds one Load: its options, what every site shares, and the problems
// found.
type loader struct {
	ctx   context.Context
	fsys  fs.FS
	opts  Options
	c     *collector
	names []string

	// A file that cannot be read is reported once; what it would have set is then
	// unknown, so nothing that depends on it is checked (no follow-on problems).
	// sharedOK is false when defaults.yaml or the environment overlay could not be
	// read.
	sharedOK bool
	defaults map[string]any
	// The environment overlay: {all: <site keys>, sites: {<site>: <site keys>}}.
	envRel     string
	envAll     map[string]any
	envSites   map[string]map[string]any
	flagLayers map[string][]layer
}

// rel names a file of the config dir in messages.
func (l *loader) rel(name string) string { return filepath.Join(l.opts.Dir, name) }

// readDefaults reads defaults.yaml, when there is one.
func (l *loader) readDefaults() {
	l.sharedOK = true
	if _, err := fs.Lstat(l.fsys, DefaultsFile); err == nil {
		raw, ok := readFile(l.ctx, l.c, l.fsys, DefaultsFile, l.rel(DefaultsFile), "defaults.yaml")
		l.sharedOK = l.sharedOK && ok
		l.defaults = checkSiteMap(l.c, l.rel(DefaultsFile), "", "", raw)
	}
}

// readEnvOverlay reads env/<env>.yaml, when an environment is selected.
func (l *loader) readEnvOverlay() {
	c, env := l.c, l.opts.Env
	l.envSites = map[string]map[string]any{}
	l.envRel = l.rel(filepath.Join(EnvDir, env+".yaml"))
	envRel := l.envRel
	if env == "" {
		return
	}
	envFile := path.Join(EnvDir, env+".yaml")
	if !envNameRE.MatchString(env) {
		c.errf("", "", "", "environment %q is not an environment name (lower case letters, digits, - and _; known: %s)", env, strings.Join(environments(l.fsys), ", "))
		l.sharedOK = false
		return
	}
	if _, err := fs.Lstat(l.fsys, envFile); err != nil {
		known := environments(l.fsys)
		c.errf(envRel, "", "", "environment overlay %q is missing (known: %s); create %s or pick one of those with --env", env, strings.Join(known, ", "), envRel)
		l.sharedOK = false
		return
	}
	raw, ok := readFile(l.ctx, c, l.fsys, envFile, envRel, "an environment overlay")
	l.sharedOK = l.sharedOK && ok
	for k, v := range raw {
		switch k {
		case "all":
			l.envAll = checkSiteMap(c, envRel, "", "all.", asMap(c, envRel, "all", v))
		case "sites":
			for sn, sv := range asMap(c, envRel, "sites", v) {
				if !slices.Contains(l.names, sn) {
					c.errf(envRel, "", "sites."+sn, "%q is not a site (sites: %s)", sn, strings.Join(l.names, ", "))
					continue
				}
				l.envSites[sn] = checkSiteMap(c, envRel, sn, "sites."+sn+".", asMap(c, envRel, "sites."+sn, sv))
			}
		default:
			c.errf(envRel, "", k, "unknown key; an environment overlay has only \"all\" and \"sites\"")
		}
	}
}

// siteResult is one site read and merged, with its own problems.
type siteResult struct {
	site    *Site
	origins map[string]string
	c       collector
}

// loadSites reads and merges the sites in parallel (each on its own collector);
// the results are in name order so they do not depend on scheduling.
func (l *loader) loadSites() []siteResult {
	results := make([]siteResult, len(l.names))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, name := range l.names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			l.loadSite(&results[i], name)
		}()
	}
	wg.Wait()
	return results
}

// loadSite reads one site file and lays its layers over each other: defaults,
// the site file, the environment overlay, SITECTL_* variables, --set flags.
func (l *loader) loadSite(r *siteResult, name string) {
	siteRel := l.rel(name + ".yaml")
	if !siteNameRE.MatchString(name) {
		r.c.errf(siteRel, name, "", "site name %q must be lower case letters, digits and dashes, starting with a letter", name)
		return
	}
	raw, ok := readFile(l.ctx, &r.c, l.fsys, name+".yaml", siteRel, "a site file")
	siteData := checkSiteMap(&r.c, siteRel, name, "", raw)
	if !ok || !l.sharedOK || l.ctx.Err() != nil {
		return
	}
	layers := []layer{{l.rel(DefaultsFile), l.defaults}, {siteRel, siteData}}
	if l.envAll != nil {
		layers = append(layers, layer{l.envRel + " (all)", l.envAll})
	}
	if m := l.envSites[name]; m != nil {
		layers = append(layers, layer{l.envRel + " (sites." + name + ")", m})
	}
	layers = append(layers, envLayers(&r.c, l.opts.Environ, name, layers)...)
	layers = append(layers, l.flagLayers[""]...)
	layers = append(layers, l.flagLayers[name]...)
	r.site, r.origins = merge(&r.c, name, siteRel, layers)
}

// sharedOrigins are the layers every site shares: defaults.yaml, the overlay's
// all, --set flags without a site, SITECTL_<KEY> variables.
func (l *loader) sharedOrigins() map[string]bool {
	shared := map[string]bool{l.rel(DefaultsFile): true, l.envRel + " (all)": true}
	for _, fl := range l.flagLayers[""] {
		shared[fl.origin] = true
	}
	for _, kv := range l.opts.Environ {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "SITECTL_") && !strings.Contains(name, "__") {
			shared["environment variable "+name] = true
		}
	}
	return shared
}

func asMap(c *collector, file, key string, v any) map[string]any {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.errf(file, "", key, "is %s; it must be a mapping (name: settings)", describe(key, v))
		return nil
	}
	return m
}
