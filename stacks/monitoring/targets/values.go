package targets

import (
	"errors"
	"fmt"
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
}

// ValuesOf returns the reader of site's values.<stack>.
func ValuesOf(topo *sites.Topology, site *sites.Site, stack string) *Values {
	return &Values{stack: stack, site: site, topo: topo, m: site.Values[stack]}
}

// Err returns every wrong value met so far, or nil.
func (v *Values) Err() error { return errors.Join(v.errs...) }

func (v *Values) bad(path string, raw any, want string) {
	key := "values." + v.stack + "." + path
	where := ""
	if v.topo != nil {
		where = " (set in " + v.topo.Origin(v.site.Name, key) + ")"
	}
	v.errs = append(v.errs, fmt.Errorf("site %s: %s is %v%s; want %s", v.site.Name, key, raw, where, want))
}

func (v *Values) lookup(path string) (any, bool) {
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

// Strings reads a list of strings, def when unset.
func (v *Values) Strings(path string, def []string) []string {
	raw, ok := v.lookup(path)
	if !ok {
		return def
	}
	switch x := raw.(type) {
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
