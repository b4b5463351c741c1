package kong

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/sitectl/sitectl/internal/yamlschema"
)

//go:embed kong.schema.json
var schemaJSON []byte

// declarativeSchema is Kong's declarative format as sitectl uses it (kong.schema.json).
var declarativeSchema = yamlschema.New("the declarative format", "https://sitectl.example/schemas/kong-declarative-3.0.json", schemaJSON)

// bundledPlugins are Kong 3.6 bundled plugins sitectl may configure.
var bundledPlugins = map[string]bool{
	"rate-limiting": true, "correlation-id": true, "prometheus": true, "request-size-limiting": true,
	"cors": true, "ip-restriction": true, "bot-detection": true, "response-ratelimiting": true,
	"request-transformer": true,
}

// Validate checks a kong.yml against Kong's declarative format as sitectl uses it:
// the JSON schema (entity fields, types, enums: kong.schema.json), then references
// (every route's service, target's upstream and plugin's service/route resolves;
// every upstream a service uses exists and has a target with weight; names unique;
// no two routes claim the same path and protocol; plugins are bundled ones).
func Validate(data []byte) error {
	inst, err := declarativeSchema.Check(data)
	if err != nil {
		return fmt.Errorf("kong.yml: %w", err)
	}
	if _, ok := inst.(map[string]any); !ok {
		return fmt.Errorf("kong.yml: the top level must be a mapping")
	}
	if probs := references(inst.(map[string]any)); len(probs) > 0 {
		return fmt.Errorf("kong.yml references do not resolve:\n  %s", strings.Join(probs, "\n  "))
	}
	return nil
}

func list(m map[string]any, key string) []map[string]any {
	raw, _ := m[key].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, e := range raw {
		if mm, ok := e.(map[string]any); ok {
			out = append(out, mm)
		}
	}
	return out
}

func str(m map[string]any, key string) string { s, _ := m[key].(string); return s }

// refName reads a reference written as "name" or {name: ...}.
func refName(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		return str(x, "name")
	}
	return ""
}

// references checks what a schema cannot: that names resolve and are unique.
func references(doc map[string]any) []string {
	c := &refCheck{services: map[string]map[string]any{}, routes: map[string]bool{}, upstreams: map[string]map[string]any{},
		paths: map[routePath]string{}, targetsOf: map[string][]map[string]any{}}
	c.collect(doc)
	c.checkServices(doc)
	c.checkUpstreams()
	c.checkPlugins(doc)
	sort.Strings(c.probs)
	return c.probs
}

type routePath struct{ path, proto, headers string } // a route matching headers is another route

// refCheck holds what references collects from a declarative config and the
// problems found.
type refCheck struct {
	probs     []string
	services  map[string]map[string]any
	routes    map[string]bool
	upstreams map[string]map[string]any
	paths     map[routePath]string
	plugins   []map[string]any
	targetsOf map[string][]map[string]any
}

func (c *refCheck) bad(f string, a ...any) { c.probs = append(c.probs, fmt.Sprintf(f, a...)) }

func (c *refCheck) addRoute(r map[string]any) {
	n := str(r, "name")
	if c.routes[n] {
		c.bad("route %q is defined twice", n)
	}
	c.routes[n] = true
	protos := []string{"http", "https"}
	if raw, ok := r["protocols"].([]any); ok {
		protos = protos[:0]
		for _, p := range raw {
			protos = append(protos, fmt.Sprint(p))
		}
	}
	for _, p := range r["paths"].([]any) {
		for _, proto := range protos {
			k := routePath{fmt.Sprint(p), proto, headerKey(r["headers"])}
			if other, dup := c.paths[k]; dup {
				c.bad("routes %q and %q both match %s %s", other, n, proto, k.path)
			}
			c.paths[k] = n
		}
	}
	for _, pl := range list(r, "plugins") {
		pl["route"] = n
		c.plugins = append(c.plugins, pl)
	}
}

// collect reads services (with their routes and plugins), top-level routes,
// upstreams and targets.
func (c *refCheck) collect(doc map[string]any) {
	for _, s := range list(doc, "services") {
		n := str(s, "name")
		if c.services[n] != nil {
			c.bad("service %q is defined twice", n)
		}
		c.services[n] = s
		for _, pl := range list(s, "plugins") {
			pl["service"] = n
			c.plugins = append(c.plugins, pl)
		}
	}
	for _, s := range list(doc, "services") {
		for _, r := range list(s, "routes") {
			c.addRoute(r)
		}
	}
	for _, r := range list(doc, "routes") {
		if svc := refName(r["service"]); c.services[svc] == nil {
			c.bad("route %q: service %q is not defined", str(r, "name"), svc)
		}
		if r["paths"] != nil {
			c.addRoute(r)
		}
	}
	for _, u := range list(doc, "upstreams") {
		n := str(u, "name")
		if c.upstreams[n] != nil {
			c.bad("upstream %q is defined twice", n)
		}
		c.upstreams[n] = u
		c.targetsOf[n] = append(c.targetsOf[n], list(u, "targets")...)
	}
	for _, t := range list(doc, "targets") {
		up := refName(t["upstream"])
		if c.upstreams[up] == nil {
			c.bad("target %q: upstream %q is not defined", str(t, "target"), up)
			continue
		}
		c.targetsOf[up] = append(c.targetsOf[up], t)
	}
}

// checkServices: every service is routed; a host that looks like an upstream is one.
func (c *refCheck) checkServices(doc map[string]any) {
	for n, s := range c.services {
		if len(list(s, "routes")) == 0 && !routedTopLevel(doc, n) {
			c.bad("service %q has no route", n)
		}
		if _, ok := c.upstreams[str(s, "host")]; !ok && (strings.HasSuffix(str(s, "host"), ".local") || strings.HasSuffix(str(s, "host"), ".hub")) {
			c.bad("service %q: host %q looks like an upstream name but no upstream has it", n, str(s, "host"))
		}
	}
}

// checkUpstreams: every upstream is used by a service, lists each target once and
// has some weight.
func (c *refCheck) checkUpstreams() {
	used := map[string]bool{}
	for _, s := range c.services {
		if _, ok := c.upstreams[str(s, "host")]; ok {
			used[str(s, "host")] = true
		}
	}
	for n := range c.upstreams {
		if !used[n] {
			c.bad("upstream %q is used by no service", n)
		}
		seen := map[string]bool{}
		weight := 0
		for _, t := range c.targetsOf[n] {
			tn := str(t, "target")
			if seen[tn] {
				c.bad("upstream %q: target %q is listed twice", n, tn)
			}
			seen[tn] = true
			if w, ok := t["weight"].(json.Number); ok {
				if i, err := w.Int64(); err == nil {
					weight += int(i)
				}
			} else if t["weight"] == nil {
				weight += 100 // Kong's default
			}
		}
		if weight == 0 {
			c.bad("upstream %q has no target with a weight above 0: every request would fail", n)
		}
	}
}

// checkPlugins: every plugin is bundled and names a defined service or route.
func (c *refCheck) checkPlugins(doc map[string]any) {
	for _, pl := range append(c.plugins, list(doc, "plugins")...) {
		name := str(pl, "name")
		if !bundledPlugins[name] {
			c.bad("plugin %q is not a bundled Kong plugin sitectl configures", name)
		}
		if s := refName(pl["service"]); pl["service"] != nil && c.services[s] == nil {
			c.bad("plugin %q: service %q is not defined", name, s)
		}
		if r := refName(pl["route"]); pl["route"] != nil && !c.routes[r] {
			c.bad("plugin %q: route %q is not defined", name, r)
		}
	}
}

func routedTopLevel(doc map[string]any, svc string) bool {
	for _, r := range list(doc, "routes") {
		if refName(r["service"]) == svc {
			return true
		}
	}
	return false
}

// headerKey is a route's header match as a comparable string ("" without one).
func headerKey(v any) string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, strings.ToLower(k)+"="+fmt.Sprint(m[k]))
	}
	sort.Strings(keys)
	return strings.Join(keys, ";")
}
