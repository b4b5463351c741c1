package targets

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// Values reads one stack's settings (the site's `values.<stack>`, merged over every
// config layer) with typed getters that take the default. A wrong value is recorded
// with the key that holds it and where it was set; Err returns them all.
type Values struct {
	stack string
	site  *sites.Site
	topo  *sites.Topology
	m     map[string]any
	errs  []error
	// read holds every path a getter asked for: a key of the site's values that no
	// getter asked for names no setting of the stack (Err reports it).
	read map[string]bool
}

// ValuesOf returns the reader of site's values.<stack>.
func ValuesOf(topo *sites.Topology, site *sites.Site, stack string) *Values {
	return &Values{stack: stack, site: site, topo: topo, m: site.Values[stack], read: map[string]bool{}}
}

// Err returns every wrong value met so far, and every key of the site's
// values.<stack> that names no setting (no getter asked for it), or nil. Call it
// after every getter of the stack's settings has run.
func (v *Values) Err() error {
	errs := v.errs
	known := make([]string, 0, len(v.read))
	for p := range v.read {
		known = append(known, p)
	}
	sort.Strings(known)
	for _, p := range leafPaths("", v.m) {
		if v.read[p] || v.readBelow(p) {
			continue
		}
		key := "values." + v.stack + "." + p
		msg := fmt.Sprintf("site %s: %s names no setting of stack %s", v.site.Name, key, v.stack)
		if v.topo != nil {
			msg += " (set in " + v.topo.Origin(v.site.Name, key) + ")"
		}
		if c := sites.Closest(p, known); c != "" {
			msg += "; did you mean values." + v.stack + "." + c + "?"
		} else {
			msg += "; settings: " + strings.Join(known, ", ")
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// readBelow reports whether a getter asked for a path inside p (p is a map the
// stack reads key by key) or p inside a path asked for (a list or map read whole).
func (v *Values) readBelow(p string) bool {
	for r := range v.read {
		if strings.HasPrefix(p, r+".") {
			return true
		}
	}
	return false
}

// leafPaths lists the dotted paths of m's values that are not maps.
func leafPaths(prefix string, m map[string]any) []string {
	var out []string
	for k, val := range m {
		if sub, ok := val.(map[string]any); ok && len(sub) > 0 {
			out = append(out, leafPaths(prefix+k+".", sub)...)
			continue
		}
		out = append(out, prefix+k)
	}
	sort.Strings(out)
	return out
}

func (v *Values) bad(path string, raw any, want string) {
	key := "values." + v.stack + "." + path
	where := ""
	if v.topo != nil {
		where = " (set in " + v.topo.Origin(v.site.Name, key) + ")"
	}
	v.errs = append(v.errs, fmt.Errorf("site %s: %s is %v%s; want %s", v.site.Name, key, raw, where, want))
}

func (v *Values) lookup(path string) (any, bool) {
	if v.read != nil {
		v.read[path] = true
	}
	var cur any = v.m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// Int reads a whole number, def when unset. Dotted paths reach nested maps
// ("canary.weight"); a site setting one nested key keeps the other defaults.
func (v *Values) Int(path string, def int) int {
	raw, ok := v.lookup(path)
	if !ok {
		return def
	}
	switch x := raw.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case uint64:
		return int(x)
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
	case string:
		if n, err := strconv.Atoi(x); err == nil {
			return n
		}
	}
	v.bad(path, raw, "a whole number")
	return def
}

// Float reads a number, def when unset.
func (v *Values) Float(path string, def float64) float64 {
	raw, ok := v.lookup(path)
	if !ok {
		return def
	}
	switch x := raw.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		return x
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return f
		}
	}
	v.bad(path, raw, "a number")
	return def
}

// String reads a string, def when unset.
func (v *Values) String(path string, def string) string {
	raw, ok := v.lookup(path)
	if !ok {
		return def
	}
	switch x := raw.(type) {
	case string:
		return x
	case int, int64, float64, bool:
		return fmt.Sprint(x)
	}
	v.bad(path, raw, "a string")
	return def
}

// Bool reads a boolean, def when unset.
func (v *Values) Bool(path string, def bool) bool {
	raw, ok := v.lookup(path)
	if !ok {
		return def
	}
	switch x := raw.(type) {
	case bool:
		return x
	case string:
		if b, err := strconv.ParseBool(x); err == nil {
			return b
		}
	}
	v.bad(path, raw, "true or false")
	return def
}

// Strings reads a list of strings, def when unset. A string (what --set gives) is
// read as a comma-separated list, in brackets or not: "[a, b]", "a,b", "[]".
func (v *Values) Strings(path string, def []string) []string {
	raw, ok := v.lookup(path)
	if !ok {
		return def
	}
	switch x := raw.(type) {
	case string:
		x = strings.TrimSpace(x)
		x = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(x, "["), "]"))
		out := []string{}
		for _, f := range strings.Split(x, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				v.bad(path, raw, "a list of strings")
				return def
			}
			out = append(out, s)
		}
		return out
	}
	v.bad(path, raw, "a list of strings")
	return def
}
