package sites

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
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

// reserved SITECTL_* variables that select things rather than set config keys.
var reservedEnv = map[string]bool{
	"SITECTL_CONFIG_DIR": true, "SITECTL_ENV": true, "SITECTL_OUTPUT": true,
	"SITECTL_SITE": true, "SITECTL_APPS_DIR": true, "SITECTL_LAB_DIR": true, "SITECTL_LAB_PREFIX": true,
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
	if opts.Dir == "" {
		opts.Dir = "sites"
	}
	if opts.Environ == nil {
		opts.Environ = os.Environ()
	}
	if opts.KnownStacks == nil {
		opts.KnownStacks = KnownStacks
	}
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	fsys := opts.FS
	if fsys == nil {
		if _, err := os.Stat(opts.Dir); err != nil {
			return nil, fmt.Errorf("read config dir %s: %w (set --config-dir or SITECTL_CONFIG_DIR)", opts.Dir, err)
		}
		fsys = os.DirFS(opts.Dir)
	}
	c := &collector{}
	names, err := scanSites(c, fsys, opts.Dir)
	if err != nil {
		return nil, err
	}
	rel := func(name string) string { return filepath.Join(opts.Dir, name) }
	// A file that cannot be read is reported once; what it would have set is then
	// unknown, so nothing that depends on it is checked (no follow-on problems).
	sharedOK := true

	var defaults map[string]any
	if _, err := fs.Lstat(fsys, DefaultsFile); err == nil {
		raw, ok := readFile(ctx, c, fsys, DefaultsFile, rel(DefaultsFile), "defaults.yaml")
		sharedOK = sharedOK && ok
		defaults = checkSiteMap(c, rel(DefaultsFile), "", "", raw)
	}

	// Environment overlay: {all: <site keys>, sites: {<site>: <site keys>}}.
	var envAll map[string]any
	envSites := map[string]map[string]any{}
	envRel := rel(filepath.Join(EnvDir, opts.Env+".yaml"))
	if opts.Env != "" {
		envFile := path.Join(EnvDir, opts.Env+".yaml")
		if !envNameRE.MatchString(opts.Env) {
			c.errf("", "", "", "environment %q is not an environment name (lower case letters, digits, - and _; known: %s)", opts.Env, strings.Join(environments(fsys), ", "))
			sharedOK = false
		} else if _, err := fs.Lstat(fsys, envFile); err != nil {
			known := environments(fsys)
			c.errf(envRel, "", "", "environment overlay %q is missing (known: %s); create %s or pick one of those with --env", opts.Env, strings.Join(known, ", "), envRel)
			sharedOK = false
		} else {
			raw, ok := readFile(ctx, c, fsys, envFile, envRel, "an environment overlay")
			sharedOK = sharedOK && ok
			for k, v := range raw {
				switch k {
				case "all":
					envAll = checkSiteMap(c, envRel, "", "all.", asMap(c, envRel, "all", v))
				case "sites":
					for sn, sv := range asMap(c, envRel, "sites", v) {
						if !contains(names, sn) {
							c.errf(envRel, "", "sites."+sn, "%q is not a site (sites: %s)", sn, strings.Join(names, ", "))
							continue
						}
						envSites[sn] = checkSiteMap(c, envRel, sn, "sites."+sn+".", asMap(c, envRel, "sites."+sn, sv))
					}
				default:
					c.errf(envRel, "", k, "unknown key; an environment overlay has only \"all\" and \"sites\"")
				}
			}
		}
	}
	if len(names) == 0 {
		c.errf(filepath.Base(opts.Dir), "", "", "no site files (<site>.yaml) found in %s", opts.Dir)
	}

	flagLayers, flagProblems := parseSet(opts.Set, names)
	c.ps = append(c.ps, flagProblems...)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading %s stopped: %w", opts.Dir, err)
	}

	topo := &Topology{Env: opts.Env, Dir: opts.Dir, origins: map[string]map[string]string{}}
	// Sites are read and merged in parallel (each on its own collector), then
	// gathered in name order so the result does not depend on scheduling.
	type result struct {
		site    *Site
		origins map[string]string
		c       collector
	}
	results := make([]result, len(names))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := &results[i]
			siteRel := rel(name + ".yaml")
			if !siteNameRE.MatchString(name) {
				r.c.errf(siteRel, name, "", "site name %q must be lower case letters, digits and dashes, starting with a letter", name)
				return
			}
			raw, ok := readFile(ctx, &r.c, fsys, name+".yaml", siteRel, "a site file")
			siteData := checkSiteMap(&r.c, siteRel, name, "", raw)
			if !ok || !sharedOK || ctx.Err() != nil {
				return
			}
			layers := []layer{{rel(DefaultsFile), defaults}, {siteRel, siteData}}
			if envAll != nil {
				layers = append(layers, layer{envRel + " (all)", envAll})
			}
			if m := envSites[name]; m != nil {
				layers = append(layers, layer{envRel + " (sites." + name + ")", m})
			}
			layers = append(layers, envLayers(&r.c, opts.Environ, name, layers)...)
			layers = append(layers, flagLayers[""]...)
			layers = append(layers, flagLayers[name]...)
			r.site, r.origins = merge(&r.c, name, siteRel, layers)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
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
	topo.shared = map[string]bool{rel(DefaultsFile): true, envRel + " (all)": true}
	for _, l := range flagLayers[""] {
		topo.shared[l.origin] = true
	}
	for _, kv := range opts.Environ {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "SITECTL_") && !strings.Contains(name, "__") {
			topo.shared["environment variable "+name] = true
		}
	}
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

// sensitiveWords mark a key whose value is a secret: such values are never
// written inline, never carried by --set, never shown in a message.
var sensitiveWords = []string{"password", "passwd", "secret", "token", "psk", "private_key", "api_key"}

func isSensitive(key string) bool {
	key = strings.ToLower(key)
	for _, w := range sensitiveWords {
		if strings.Contains(key, w) {
			return true
		}
	}
	return false
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func lastKey(path string) string {
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[i+1:]
	}
	return path
}

// mergeInto lays src over dst: mappings merge key by key, anything else (a list,
// a value) replaces what dst had. Empty values set nothing.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		switch x := v.(type) {
		case nil:
		case map[string]any:
			if d, ok := dst[k].(map[string]any); ok {
				mergeInto(d, x)
				continue
			}
			dst[k] = deepCopy(x)
		default:
			dst[k] = deepCopyValue(x)
		}
	}
}

// merge lays one site's layers over each other and decodes the result. Every layer
// was checked against the schema already (wrong values left out), so decoding
// fails only on what the schema check cannot see.
func merge(c *collector, name, siteRel string, layers []layer) (*Site, map[string]string) {
	layers = replaceSecretRefs(layers)
	all := map[string]any{}
	origins := map[string]string{}
	for _, l := range layers {
		if l.data == nil {
			continue
		}
		mergeInto(all, l.data)
		for _, k := range flatten("", l.data) {
			origins[k] = l.origin
		}
	}
	var s Site
	if err := decodeInto("", reflect.ValueOf(&s).Elem(), all); err != nil {
		c.errf(siteRel, name, "", "the merged settings cannot be read: %v", err)
		return nil, nil
	}
	if s.Name != "" && s.Name != name {
		c.errf(origin(origins, "name", siteRel), name, "name", "is %q but the file is %s.yaml; the site's name is its file's name (remove the key or rename the file)", s.Name, name)
	}
	s.Name = name
	return &s, origins
}

func flatten(prefix string, m map[string]any) []string {
	var out []string
	for k, v := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			out = append(out, flatten(p, sub)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// origin finds which layer set key (or its closest parent; a list item's key is
// covered by its list's); def when none did.
func origin(origins map[string]string, key, def string) string {
	for k := key; k != ""; {
		if o, ok := origins[k]; ok {
			return o
		}
		// a parent set as a whole (a list or map) covers its children
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	// a child set below key: name the first one's origin
	for k, o := range origins {
		if strings.HasPrefix(k, key+".") {
			return o
		}
	}
	return def
}

func envName(key string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// envLayers turns SITECTL_<KEY> (every site) and SITECTL_<SITE>__<KEY> (one site)
// into layers. Keys of maps already present in earlier layers (images.kong) are
// reachable too. SITECTL_<KEY> variables that name no key are left alone: they may
// hold secrets the config references. A SITECTL_<SITE>__<KEY> of a known site that
// names no setting is refused (with the closest name), its value never shown.
func envLayers(c *collector, environ []string, site string, earlier []layer) []layer {
	found := false
	for _, kv := range environ {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "SITECTL_") && !reservedEnv[name] {
			found = true
			break
		}
	}
	if !found {
		return nil
	}
	keys := make(map[string]string, len(siteLeafKeys))
	for k, v := range siteLeafKeys {
		keys[k] = v
	}
	for _, l := range earlier {
		for _, k := range flatten("", l.data) {
			if _, ok := keys[envName(k)]; !ok {
				keys[envName(k)] = k
			}
		}
	}
	sitePrefix := "SITECTL_" + envName(site) + "__"
	var all, one []string
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "SITECTL_") || reservedEnv[name] {
			continue
		}
		if rest, ok := strings.CutPrefix(name, sitePrefix); ok {
			if k, ok := keys[rest]; ok {
				one = append(one, k+"="+val+"\x00"+name)
				continue
			}
			msg := fmt.Sprintf("names no setting of site %s", site)
			var cands []string
			for e := range keys {
				cands = append(cands, e)
			}
			if s := closest(rest, cands); s != "" {
				msg += fmt.Sprintf("; did you mean %s%s (%s)?", sitePrefix, s, keys[s])
			}
			c.errf("environment variable "+name, site, "", "%s (SITECTL_<SITE>__<KEY>: the key's dots and dashes as _, e.g. %sDEPLOY_TIMEOUT); unset it or fix the name", msg, sitePrefix)
			continue
		}
		if k, ok := keys[strings.TrimPrefix(name, "SITECTL_")]; ok {
			all = append(all, k+"="+val+"\x00"+name)
		}
	}
	sort.Strings(all)
	sort.Strings(one)
	var out []layer
	for i, group := range [][]string{all, one} {
		for _, e := range group {
			kv, name, _ := strings.Cut(e, "\x00")
			k, val, _ := strings.Cut(kv, "=")
			origin := "environment variable " + name
			owner := "" // a variable for every site: its problems are reported once
			if i == 1 {
				owner = site
			}
			w := &walker{c: c, file: origin, site: owner, text: true}
			out = append(out, layer{origin: origin, data: w.siteMap(nest(k, val))})
		}
	}
	return out
}

// nest turns "a.b.c", v into {a: {b: {c: v}}}.
func nest(key string, val any) map[string]any {
	parts := strings.Split(key, ".")
	m := map[string]any{parts[len(parts)-1]: val}
	for i := len(parts) - 2; i >= 0; i-- {
		m = map[string]any{parts[i]: m}
	}
	return m
}

// parseSet turns --set values into layers keyed by site ("" for every site),
// checked against the schema: a key that names no setting is refused with the
// closest one.
func parseSet(sets []string, names []string) (map[string][]layer, Problems) {
	out := map[string][]layer{}
	var c collector
	for _, s := range sets {
		kv, val, ok := strings.Cut(s, "=")
		if !ok || strings.TrimSpace(kv) == "" {
			c.errf("flag --set", "", "", "%s: want key=value (every site) or site:key=value (one site), e.g. --set deploy.timeout=10m", quoteShort(s))
			continue
		}
		site := ""
		if sn, k, ok := strings.Cut(kv, ":"); ok {
			if !contains(names, sn) {
				c.errf("flag --set "+kv, "", "", "%q is not a site (sites: %s)", sn, strings.Join(names, ", "))
				continue
			}
			site, kv = sn, k
		}
		key := strings.ToLower(strings.TrimSpace(kv))
		origin := "flag --set " + kv
		if site != "" {
			origin = "flag --set " + site + ":" + kv
		}
		if key == "" || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
			c.errf(origin, site, "", "%q is not a key: name a setting with dots, e.g. deploy.timeout", kv)
			continue
		}
		if isSensitive(key) && !strings.HasSuffix(key, ".env") && !strings.HasSuffix(key, ".file") && !strings.HasSuffix(key, ".docker_secret") {
			c.errf(origin, site, key, "--set cannot carry a secret value; set %s.env or %s.file to name where it comes from", key, key)
			continue
		}
		w := &walker{c: &c, file: origin, site: site, text: true}
		if data := w.siteMap(nest(key, val)); len(data) > 0 {
			out[site] = append(out[site], layer{origin: origin, data: data})
		}
	}
	return out, c.ps
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = deepCopyValue(v)
	}
	return out
}

func deepCopyValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopy(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyValue(e)
		}
		return out
	}
	return v
}

// replaceSecretRefs makes a secret reference set in a later layer replace the whole
// reference of earlier layers: {env: X} then {file: Y} is {file: Y}, not both.
func replaceSecretRefs(layers []layer) []layer {
	out := make([]layer, len(layers))
	later := map[string]bool{}
	for i := len(layers) - 1; i >= 0; i-- {
		data := layers[i].data
		if data != nil && len(later) > 0 {
			data = deepCopy(data)
			for p := range later {
				deletePath(data, p)
			}
		}
		out[i] = layer{origin: layers[i].origin, data: data}
		for _, p := range secretRefPaths(reflect.TypeOf(Site{}), "", layers[i].data) {
			later[p] = true
		}
	}
	return out
}

func secretRefPaths(t reflect.Type, path string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if t == secretRefType {
		return []string{path}
	}
	var out []string
	switch t.Kind() {
	case reflect.Struct:
		for tag, ft := range fieldsOf(t) {
			if sub, ok := m[tag]; ok {
				out = append(out, secretRefPaths(ft, join(path, tag), sub)...)
			}
		}
	case reflect.Map:
		if t.Elem().Kind() != reflect.Struct {
			break
		}
		for k, sub := range m {
			out = append(out, secretRefPaths(t.Elem(), join(path, k), sub)...)
		}
	}
	return out
}

func deletePath(m map[string]any, path string) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	delete(m, parts[len(parts)-1])
}
