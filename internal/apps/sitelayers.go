package apps

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/sites"
)

// Per-site and per-environment settings beyond image and replicas: the rate limit
// on the app's routes and the entry service's health check. Each is layered as
// image and replicas are: x-sitectl < x-sitectl.site.<site> < x-sitectl.env.<env> <
// the site's values.<app> (itself defaults < site < environment < SITECTL_* <
// --set). An environment overlay of the sites (such as the lab's, which `sitectl
// lab up` writes) reaches an app through values.<app>.

// healthcheckKeys are the compose healthcheck keys a layer may set.
var healthcheckKeys = []string{"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}

// layer is one source of a site's settings: where it is written (file, key), the
// site its problems name ("" for x-sitectl.env.<env>, the same at every site: one
// problem, not one per site), and what it sets.
type layer struct {
	file, key, site string
	rateLimit       any
	healthcheck     any
}

// siteLayers are the layers of x-sitectl for site, lowest first, then the site's
// values.<app>.
func siteLayers(rel string, topo *sites.Topology, site *sites.Site, a *sites.App, d decl) []layer {
	var out []layer // x-sitectl.rate_limit itself is checked once for all sites (checkPlacementAndMongo)
	for _, o := range []struct {
		ov        overrides
		key, site string
	}{{d.Site[site.Name], Extension + ".site." + site.Name, site.Name}, {d.Env[topo.Env], Extension + ".env." + topo.Env, ""}} {
		if o.ov.RateLimit != nil {
			out = append(out, layer{file: rel, key: o.key + ".rate_limit", site: o.site, rateLimit: *o.ov.RateLimit})
		}
		if o.ov.Healthcheck != nil {
			out = append(out, layer{file: rel, key: o.key + ".healthcheck", site: o.site, healthcheck: o.ov.Healthcheck})
		}
	}
	vals := site.Values[a.Name]
	for _, k := range []string{"rate_limit", "healthcheck"} {
		v, ok := vals[k]
		if !ok {
			continue
		}
		key := "values." + a.Name + "." + k
		l := layer{file: topo.Origin(site.Name, key), key: key, site: site.Name}
		if k == "rate_limit" {
			l.rateLimit = v
		} else {
			l.healthcheck = v
		}
		out = append(out, l)
	}
	return out
}

// resolveSiteLayers sets as.RateLimit and as.Healthcheck for site from its layers;
// false when one is refused (reported, naming its file and key).
func resolveSiteLayers(c *collector, rel string, topo *sites.Topology, site *sites.Site, a *sites.App, d decl, as *sites.AppSite) bool {
	ok := true
	if d.RateLimit > 0 && len(a.Routes) > 0 {
		as.RateLimit = d.RateLimit
	}
	for _, l := range siteLayers(rel, topo, site, a, d) {
		if l.rateLimit != nil {
			n, err := wholeNumber(l.rateLimit)
			switch {
			case err != nil || n < 0:
				c.errf(l.file, l.site, l.key, "%v: requests per minute per client address (1 or more), or 0 for no limit", l.rateLimit)
				ok = false
			case n > 0 && len(a.Routes) == 0:
				c.errf(l.file, l.site, l.key, "limits the app's routes, and the app has none: add %s.routes or drop rate_limit", Extension)
				ok = false
			default:
				as.RateLimit = n
			}
		}
		if l.healthcheck != nil {
			if !mergeHealthcheck(c, l, as) {
				ok = false
			}
		}
	}
	return ok
}

// mergeHealthcheck writes l's healthcheck keys over as.Healthcheck, checking each.
func mergeHealthcheck(c *collector, l layer, as *sites.AppSite) bool {
	m, isMap := l.healthcheck.(map[string]any)
	if !isMap {
		c.errf(l.file, l.site, l.key, "must be a mapping of compose healthcheck keys (%s), e.g. {test: [CMD, curl, -fsS, http://127.0.0.1:8000/health], interval: 5s}", strings.Join(healthcheckKeys, ", "))
		return false
	}
	if _, test := m["test"]; test && m["disable"] == true {
		c.errf(l.file, l.site, l.key, "sets both test and disable: true (compose refuses both); keep one")
		return false
	}
	ok := true
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v, key := m[k], l.key+"."+k
		if msg := checkHealthcheckKey(k, v); msg != "" {
			c.errf(l.file, l.site, key, "%s", msg)
			ok = false
			continue
		}
		if as.Healthcheck == nil {
			as.Healthcheck = map[string]any{}
		}
		// A later layer's test turns an earlier disable off, and its disable drops an
		// earlier test.
		switch {
		case k == "test":
			delete(as.Healthcheck, "disable")
		case k == "disable" && v == true:
			delete(as.Healthcheck, "test")
		}
		as.Healthcheck[k] = normalizeHealthcheck(k, v)
	}
	return ok
}

// checkHealthcheckKey says what is wrong with a healthcheck key's value ("" if
// nothing), as docker/cli's loader and the swarm would take it.
func checkHealthcheckKey(k string, v any) string {
	switch k {
	case "test":
		return checkHealthTest(v)
	case "interval", "timeout", "start_period", "start_interval":
		d, err := time.ParseDuration(fmt.Sprint(v))
		if _, isStr := v.(string); !isStr || err != nil || d < 0 || (d == 0 && k != "start_period") {
			return fmt.Sprintf("%v: want a duration such as 5s", v)
		}
	case "retries":
		if n, err := wholeNumber(v); err != nil || n < 0 {
			return fmt.Sprintf("%v: want a whole number of retries (0 or more)", v)
		}
	case "disable":
		if _, isBool := v.(bool); !isBool {
			return fmt.Sprintf("%v: want true or false", v)
		}
	default:
		return fmt.Sprintf("unknown healthcheck key (allowed: %s)", strings.Join(healthcheckKeys, ", "))
	}
	return ""
}

// checkHealthTest checks a healthcheck test: a shell command string, or a list
// starting with CMD (and a command), CMD-SHELL (and a command) or NONE.
func checkHealthTest(v any) string {
	const want = "want a list such as [CMD, curl, -fsS, http://127.0.0.1:8000/health] ([CMD-SHELL, \"command\"], [NONE]) or a shell command"
	switch x := v.(type) {
	case string:
		if strings.TrimSpace(x) == "" {
			return "empty: " + want
		}
		return ""
	case []any:
		var words []string
		for _, e := range x {
			s, isStr := e.(string)
			if !isStr {
				return fmt.Sprintf("%v: every element is a string; %s", v, want)
			}
			words = append(words, s)
		}
		switch {
		case len(words) == 0:
			return "empty: " + want
		case words[0] == "NONE":
			return ""
		case (words[0] == "CMD" || words[0] == "CMD-SHELL") && len(words) > 1:
			return ""
		}
		return fmt.Sprintf("%v: %s", v, want)
	}
	return fmt.Sprintf("%v: %s", v, want)
}

// normalizeHealthcheck is a checked value as the compose file takes it (retries
// a number, a duration a string).
func normalizeHealthcheck(k string, v any) any {
	if k == "retries" {
		n, _ := wholeNumber(v)
		return n
	}
	return v
}

// wholeNumber reads an int written as a number or (from an environment variable)
// a string.
func wholeNumber(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case uint64:
		return int(x), nil
	case float64:
		if x != float64(int(x)) {
			return 0, fmt.Errorf("not whole")
		}
		return int(x), nil
	case string:
		return strconv.Atoi(strings.TrimSpace(x))
	}
	return 0, fmt.Errorf("not a number")
}
