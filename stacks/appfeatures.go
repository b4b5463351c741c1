package stacks

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// AppNodes is the placement constraint of a service that runs on a site's app
// nodes (node.labels.role == app), or on a site without any (the cloud hub runs its
// services on its monitor node) on the site's own nodes: the Django API's, and an
// app's with x-sitectl.placement: app-nodes.
func AppNodes(s *sites.Site) string {
	for _, n := range s.Nodes {
		if n.Labels["role"] == "app" {
			return "node.labels.role == app"
		}
	}
	return "node.labels.site == " + s.Name
}

// MongoURI lists every member of the MongoDB replica set across the sites, site's
// own first, with the site's replica set and read preference (no credentials): the
// Django API's MONGO_URI, and an app's with x-sitectl.mongo.
func MongoURI(t *sites.Topology, s *sites.Site) string {
	var hosts []string
	add := func(site *sites.Site) {
		for _, m := range site.Mongo.Members {
			hosts = append(hosts, m.Host)
		}
	}
	add(s)
	if t != nil {
		for _, o := range t.Sites {
			if o.Name != s.Name {
				add(o)
			}
		}
	}
	q := url.Values{}
	if s.Mongo.ReplicaSet != "" {
		q.Set("replicaSet", s.Mongo.ReplicaSet)
	}
	if s.Mongo.ReadPreference != "" {
		q.Set("readPreference", s.Mongo.ReadPreference)
	}
	return "mongodb://" + strings.Join(hosts, ",") + "/?" + q.Encode()
}

// addAppPlacement constrains the entry service to the site's app nodes
// (x-sitectl.placement: app-nodes), next to the compose file's own constraints.
func addAppPlacement(in Input, dep map[string]any) {
	place := subMap(dep, "placement")
	cons, _ := place["constraints"].([]any)
	if c := AppNodes(in.Site); !containsAny(cons, c) {
		place["constraints"] = append(cons, c)
	}
}

// setEnv sets the variable name to value in a compose service's environment (a
// list or a map).
func setEnv(svc map[string]any, name, value string) {
	switch env := svc["environment"].(type) {
	case []any:
		kept := env[:0:0]
		for _, e := range env {
			if x, _ := e.(string); x != name && !strings.HasPrefix(x, name+"=") {
				kept = append(kept, e)
			}
		}
		svc["environment"] = append(kept, name+"="+value)
	default:
		m, _ := env.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		m[name] = value
		svc["environment"] = m
	}
}

// Variables sitectl interpolates in an app's compose file at each site, before the
// deploy's interpolation of the others (as `docker stack deploy` would with them
// exported): the site's name and the environment.
const (
	SiteVar = "SITECTL_SITE"
	EnvVar  = "SITECTL_ENV"
)

var siteVarRE = regexp.MustCompile(`\$\$|\$\{(` + SiteVar + `|` + EnvVar + `)\}|\$(` + SiteVar + `|` + EnvVar + `)\b`)

// interpolateSite replaces ${SITECTL_SITE} and ${SITECTL_ENV} (and the forms
// without braces) in every string value of v; $$ stays an escaped $ for the
// deploy's interpolation. It returns v with the values replaced.
func interpolateSite(v any, vars map[string]string) any {
	switch x := v.(type) {
	case string:
		if !strings.Contains(x, "$") {
			return x
		}
		return siteVarRE.ReplaceAllStringFunc(x, func(m string) string {
			if m == "$$" {
				return m
			}
			return vars[strings.Trim(m, "${}")]
		})
	case map[string]any:
		for k, e := range x {
			x[k] = interpolateSite(e, vars)
		}
	case []any:
		for i, e := range x {
			x[i] = interpolateSite(e, vars)
		}
	}
	return v
}
