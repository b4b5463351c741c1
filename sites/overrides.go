package sites

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// reserved SITECTL_* variables that select things rather than set config keys.
var reservedEnv = map[string]bool{
	"SITECTL_CONFIG_DIR": true, "SITECTL_ENV": true, "SITECTL_OUTPUT": true,
	"SITECTL_SITE": true, "SITECTL_APPS_DIR": true, "SITECTL_LAB_DIR": true, "SITECTL_LAB_PREFIX": true,
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
			if !slices.Contains(names, sn) {
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
