package apps

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	composetypes "github.com/docker/cli/cli/compose/types"
	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/sites"
)

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
		c.errf(rel, "", Extension, "%s (allowed keys: service, port, sites, replicas, image, health, metrics, routes, site, env, database, resources, update, rollback, canary, after, placement, mongo, rate_limit; in site.<site> and env.<env>: replicas, image, canary, rate_limit, healthcheck)", msg)
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

// builtinAPI is the built-in stack whose routes (/api, /admin) Kong serves.
const builtinAPI = "django-api"

// checkRoutes refuses two apps (or an app and a built-in route) claiming the same
// host and path at one site.
func checkRoutes(c *collector, topo *sites.Topology, list []*sites.App) {
	type claim struct{ app, file string }
	type clash struct{ file, key, msg string }
	clashes := map[clash][]string{}
	var order []clash
	hub := topo.HubSite()
	for _, s := range topo.Sites {
		claimed := map[string]claim{}
		// Kong's built-in routes (design decision 30): /api where the site runs the
		// built-in django-api stack, /admin where the hub does.
		if s.HasStack("kong") && s.HasStack(builtinAPI) {
			claimed["|/api"] = claim{app: "the built-in django-api route"}
		}
		if s.HasStack("kong") && hub != nil && hub.HasStack(builtinAPI) {
			claimed["|/admin"] = claim{app: "the built-in django-api route"}
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
	for _, p := range []struct {
		compose *composetypes.UpdateConfig
		ours    *sites.AppPolicy
		name    string
	}{{svc.Deploy.UpdateConfig, a.Update, "update"}, {svc.Deploy.RollbackConfig, a.Rollback, "rollback"}} {
		key, order := "", ""
		if p.compose != nil {
			key, order = "services."+svc.Name+".deploy."+p.name+"_config.order", p.compose.Order
		}
		if p.ours != nil && p.ours.Order != "" {
			key, order = Extension+"."+p.name+".order", p.ours.Order
		}
		if order == "start-first" {
			c.errf(rel, "", key, "start-first at %s, whose deploy.publish_mode is host: the new task cannot bind the metrics port %d the old one holds on its node; use order: stop-first (or publish_mode: ingress)", sitesPhrase(host), a.MetricsPublished)
		}
	}
}
