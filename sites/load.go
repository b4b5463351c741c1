package sites

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
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
	// Env is the environment overlay (dev, staging, production, lab); empty means none.
	Env string
	// Environ is the process environment used for SITECTL_* overrides (os.Environ()
	// when nil).
	Environ []string
	// Set holds flag overrides, each "key=value" (every site) or "site:key=value".
	Set []string
	// KnownStacks overrides the stack names a site may list (KnownStacks when nil).
	KnownStacks []string
}

// reserved SITECTL_* variables that select things rather than set config keys.
var reservedEnv = map[string]bool{
	"SITECTL_CONFIG_DIR": true, "SITECTL_ENV": true, "SITECTL_OUTPUT": true,
	"SITECTL_SITE": true, "SITECTL_LAB_DIR": true, "SITECTL_LAB_PREFIX": true,
}

var siteNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// layer is one source of settings for one site.
type layer struct {
	origin string // "sites/douala.yaml", "env SITECTL_X", "flag --set x=y"
	data   map[string]any
}

// ResolveEnv picks the environment: the flag value, else SITECTL_ENV, else the
// config dir's .sitectl-env, else "dev".
func ResolveEnv(flagValue, dir string, environ []string) string {
	if flagValue != "" {
		return flagValue
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "SITECTL_ENV="); ok && v != "" {
			return v
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, CurrentEnvFile)); err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return v
		}
	}
	return "dev"
}

// SiteNames lists the sites defined in dir (one <site>.yaml each), sorted.
func SiteNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read config dir %s: %w (set --config-dir or SITECTL_CONFIG_DIR)", dir, err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == DefaultsFile || !strings.HasSuffix(n, ".yaml") {
			continue
		}
		names = append(names, strings.TrimSuffix(n, ".yaml"))
	}
	sort.Strings(names)
	return names, nil
}

// Environments lists the environment overlays in dir/env, sorted.
func Environments(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, EnvDir))
	var envs []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && strings.HasSuffix(n, ".yaml") {
			envs = append(envs, strings.TrimSuffix(n, ".yaml"))
		}
	}
	sort.Strings(envs)
	return envs
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
	c := &collector{}
	names, err := SiteNames(opts.Dir)
	if err != nil {
		return nil, err
	}
	rel := func(name string) string { return filepath.Join(opts.Dir, name) }

	var defaults map[string]any
	if _, err := os.Stat(filepath.Join(opts.Dir, DefaultsFile)); err == nil {
		defaults = checkSiteMap(c, rel(DefaultsFile), "", "", readFile(c, opts.Dir, DefaultsFile, rel(DefaultsFile)))
	}

	// Environment overlay: {all: <site keys>, sites: {<site>: <site keys>}}.
	var envAll map[string]any
	envSites := map[string]map[string]any{}
	envRel := rel(filepath.Join(EnvDir, opts.Env+".yaml"))
	if opts.Env != "" {
		if _, err := os.Stat(filepath.Join(opts.Dir, EnvDir, opts.Env+".yaml")); err != nil {
			known := Environments(opts.Dir)
			c.errf(envRel, "", "", "environment overlay %q is missing (known: %s); create %s or pick one of those with --env", opts.Env, strings.Join(known, ", "), envRel)
		} else {
			raw := readFile(c, opts.Dir, filepath.Join(EnvDir, opts.Env+".yaml"), envRel)
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
			if !siteNameRE.MatchString(name) {
				r.c.errf(rel(name+".yaml"), name, "", "site name %q must be lower case letters, digits and dashes, starting with a letter", name)
				return
			}
			siteRel := rel(name + ".yaml")
			siteData := checkSiteMap(&r.c, siteRel, name, "", readFile(&r.c, opts.Dir, name+".yaml", siteRel))
			layers := []layer{{rel(DefaultsFile), defaults}, {siteRel, siteData}}
			if envAll != nil {
				layers = append(layers, layer{envRel + " (all)", envAll})
			}
			if m := envSites[name]; m != nil {
				layers = append(layers, layer{envRel + " (sites." + name + ")", m})
			}
			layers = append(layers, envLayers(opts.Environ, name, layers)...)
			layers = append(layers, flagLayers[""]...)
			layers = append(layers, flagLayers[name]...)
			r.site, r.origins = merge(&r.c, name, siteRel, layers)
		}()
	}
	wg.Wait()
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
	validate(c, topo, opts, names)
	c.ps = c.ps.sorted()
	if len(c.ps.Errors()) > 0 {
		return nil, c.ps
	}
	topo.Warnings = c.ps.Warnings()
	topo.build()
	return topo, nil
}

// readFile reads one YAML file into a map. yaml.v3 reads it (keeping empty
// mappings, so `sites: {garoua: {}}` is still checked); viper merges the layers.
func readFile(c *collector, dir, name, relName string) map[string]any {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		c.errf(relName, "", "", "cannot read: %v", err)
		return nil
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		c.errf(relName, "", "", "cannot read: %v", err)
		return nil
	}
	return lowerKeys(m)
}

// lowerKeys lower-cases keys the way viper does, so layers merge key by key.
func lowerKeys(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = lowerValue(v)
	}
	return out
}

func lowerValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return lowerKeys(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = lowerValue(e)
		}
		return out
	}
	return v
}

func asMap(c *collector, file, key string, v any) map[string]any {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.errf(file, "", key, "must be a mapping, got %T", v)
		return nil
	}
	return m
}

var sensitiveKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|psk|private_key|api_key)`)

// checkSiteMap reports, for one file's site-level map, unknown keys, wrong types and
// secrets written inline, and returns the map without them, so that the layers can
// still be merged and checked against each other (every problem at once).
func checkSiteMap(c *collector, file, site, prefix string, m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return walkSchema(c, file, site, prefix, "", reflect.TypeOf(Site{}), m).(map[string]any)
}

// decodeErrors decodes one layer alone, to say which file holds a wrong type.
func decodeErrors(m map[string]any) []string {
	var s Site
	dec, err := mapstructure.NewDecoder(decoderConfig(&s, nil))
	if err != nil {
		panic(err)
	}
	if err := dec.Decode(m); err != nil {
		return splitDecodeErrors(err)
	}
	return nil
}

var (
	secretRefType = reflect.TypeOf(SecretRef{})
	durationType  = reflect.TypeOf(Duration(0))
)

// walkSchema checks value v found at path against type t: unknown keys and inline
// secrets are reported and left out of the returned copy.
func walkSchema(c *collector, file, site, prefix, path string, t reflect.Type, v any) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == secretRefType {
		if _, ok := v.(map[string]any); !ok && v != nil {
			c.errf(file, site, prefix+path, "a secret written inline is refused; name where it comes from instead: {env: VAR} or {file: /path} or {docker_secret: name}")
			return map[string]any{}
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == durationType {
			return v
		}
		m, ok := v.(map[string]any)
		if !ok {
			return v // the decoder reports the type error
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]; tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		out := make(map[string]any, len(m))
		for k, sub := range m {
			ft, known := fields[k]
			if !known {
				c.errf(file, site, prefix+join(path, k), "unknown key (misspelt, or not a setting sitectl has; `sitectl config show` lists every key)")
				continue
			}
			out[k] = walkSchema(c, file, site, prefix, join(path, k), ft, sub)
		}
		return out
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(m))
		for k, sub := range m {
			out[k] = walkSchema(c, file, site, prefix, join(path, k), t.Elem(), sub)
		}
		return out
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(l))
		for i, e := range l {
			out[i] = walkSchema(c, file, site, prefix, fmt.Sprintf("%s[%d]", path, i), t.Elem(), e)
		}
		return out
	case reflect.Interface:
		// free-form values (per-stack settings): refuse inline secrets by key name
		if sensitiveKey.MatchString(lastKey(path)) {
			if _, isStr := v.(string); isStr {
				c.errf(file, site, prefix+path, "a secret written inline is refused; put it in a secret (secrets.<name>: {env: VAR}) and reference the secret's name")
				return nil
			}
		}
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, sub := range m {
				out[k] = walkSchema(c, file, site, prefix, join(path, k), t, sub)
			}
			return out
		}
		return v
	case reflect.String:
		if k := lastKey(path); sensitiveKey.MatchString(k) && k != "docker_secret" && !strings.HasPrefix(path, "images.") {
			if _, isStr := v.(string); isStr {
				c.errf(file, site, prefix+path, "a secret written inline is refused; name where it comes from instead: {env: VAR} or {file: /path}")
				return nil
			}
		}
	}
	return v
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

func decoderConfig(out any, md *mapstructure.Metadata) *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		Result:           out,
		Metadata:         md,
		WeaklyTypedInput: true,
		ZeroFields:       false,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.TextUnmarshallerHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		),
	}
}

func splitDecodeErrors(err error) []string {
	var out []string
	type unwrapper interface{ Unwrap() []error }
	var u unwrapper
	if errors.As(err, &u) {
		for _, e := range u.Unwrap() {
			out = append(out, splitDecodeErrors(e)...)
		}
		return out
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "decoding failed due to the following error(s):") {
		for _, l := range strings.Split(msg, "\n")[1:] {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	return []string{msg}
}

// merge layers one site's settings with viper and decodes the result.
func merge(c *collector, name, siteRel string, layers []layer) (*Site, map[string]string) {
	layers = replaceSecretRefs(layers)
	v := viper.New()
	origins := map[string]string{}
	for _, l := range layers {
		if l.data == nil {
			continue
		}
		// viper keeps and mutates the maps it is given; layers are shared between
		// sites, so each merge gets its own copy.
		if err := v.MergeConfigMap(deepCopy(l.data)); err != nil {
			c.errf(l.origin, name, "", "cannot merge: %v", err)
			return nil, nil
		}
		for _, k := range flatten("", l.data) {
			origins[k] = l.origin
		}
	}
	var s Site
	dec, err := mapstructure.NewDecoder(decoderConfig(&s, nil))
	if err != nil {
		panic(err)
	}
	if err := dec.Decode(v.AllSettings()); err != nil {
		// Name the layer(s) holding the wrong values; fall back to the merged error.
		found := false
		for _, l := range layers {
			for _, e := range decodeErrors(l.data) {
				c.errf(l.origin, name, "", "%s", e)
				found = true
			}
		}
		if !found {
			for _, e := range splitDecodeErrors(err) {
				c.errf(siteRel, name, "", "%s", e)
			}
		}
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

// origin finds which layer set key (or its closest parent); def when none did.
func origin(origins map[string]string, key, def string) string {
	for k := key; k != ""; {
		if o, ok := origins[k]; ok {
			return o
		}
		// a parent set as a whole (a list or map) covers its children
		i := strings.LastIndex(k, ".")
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

// leafKeys lists the dotted key paths of Site's settings, for SITECTL_* lookups.
func leafKeys(t reflect.Type, prefix string, out map[string]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		p := tag
		if prefix != "" {
			p = prefix + "." + tag
		}
		ft := f.Type
		if ft.Kind() == reflect.Struct {
			leafKeys(ft, p, out)
			continue
		}
		out[envName(p)] = p
	}
}

func envName(key string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// envLayers turns SITECTL_<KEY> (every site) and SITECTL_<SITE>__<KEY> (one site)
// into layers. Keys of maps already present in earlier layers (images.kong) are
// reachable too. Variables that name no key are left alone: they may hold secrets
// the config references.
func envLayers(environ []string, site string, earlier []layer) []layer {
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
	keys := map[string]string{}
	leafKeys(reflect.TypeOf(Site{}), "", keys)
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
			}
			continue
		}
		if k, ok := keys[strings.TrimPrefix(name, "SITECTL_")]; ok {
			all = append(all, k+"="+val+"\x00"+name)
		}
	}
	sort.Strings(all)
	sort.Strings(one)
	var out []layer
	for _, group := range [][]string{all, one} {
		for _, e := range group {
			kv, name, _ := strings.Cut(e, "\x00")
			k, val, _ := strings.Cut(kv, "=")
			out = append(out, layer{origin: "environment variable " + name, data: nest(k, val)})
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

// parseSet turns --set values into layers keyed by site ("" for every site).
func parseSet(sets []string, names []string) (map[string][]layer, Problems) {
	out := map[string][]layer{}
	var c collector
	for _, s := range sets {
		kv, val, ok := strings.Cut(s, "=")
		if !ok || kv == "" {
			c.errf("", "", "", "--set %q: want key=value or site:key=value", s)
			continue
		}
		site := ""
		if sn, k, ok := strings.Cut(kv, ":"); ok {
			if !contains(names, sn) {
				c.errf("", "", "", "--set %q: %q is not a site (sites: %s)", s, sn, strings.Join(names, ", "))
				continue
			}
			site, kv = sn, k
		}
		key := strings.ToLower(kv)
		if sensitiveKey.MatchString(key) && !strings.HasSuffix(key, ".env") && !strings.HasSuffix(key, ".file") && !strings.HasSuffix(key, ".docker_secret") {
			c.errf("", site, key, "--set cannot carry a secret value; set %s.env or %s.file to name where it comes from", key, key)
			continue
		}
		out[site] = append(out[site], layer{origin: "flag --set " + kv, data: nest(key, val)})
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
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
			if sub, ok := m[tag]; ok && tag != "" && tag != "-" {
				out = append(out, secretRefPaths(f.Type, join(path, tag), sub)...)
			}
		}
	case reflect.Map:
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
