package kong

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// appServices adds the operator apps' routes served at site: a route "local" where
// the site runs the app goes to the site's own service (an upstream per app, health
// checked at the app's readiness path); a route "hub" goes to the hub's service at
// the hub and, at a spoke, to the hub's Kong nodes over the tunnel (as /admin).
// link is the spoke's way to the hub's Kong (nil at the hub): forwarded routes reach
// the hub as /admin does, with the same certificate verification.
func appServices(d *declarative, topo *sites.Topology, site *sites.Site, tags []string, link *hubLink) error {
	for _, a := range topo.Apps {
		_, runs := a.Sites[site.Name]
		var local, failover, forwarded []route
		for i, r := range a.Routes {
			rt := httpsRoute(fmt.Sprintf("app-%s-%d", a.Name, i), r.Path, tags)
			rt.Hosts = r.Hosts
			switch {
			case r.At == sites.RouteHub && !site.IsHub():
				forwarded = append(forwarded, rt)
			case runs && r.Failover == sites.FailoverPeers:
				failover = append(failover, rt)
			case runs:
				local = append(local, rt)
			}
		}
		if runs && len(local)+len(failover) > 0 {
			up := upstream{Name: a.Name + ".app", Algorithm: "round-robin", Tags: tags,
				Healthchecks: checks("http", probePath(a), []int{200}),
				Targets:      appTargets(a, site, tags)}
			if len(failover) > 0 {
				// It serves the peers' failover requests: probed as often as the
				// failover upstream (as /api's django-api.own).
				two := apiInterval
				up.Healthchecks.Active.Healthy.Interval = &two
				up.Healthchecks.Active.Unhealthy.Interval = &two
			}
			d.Upstreams = append(d.Upstreams, up)
			if len(failover) > 0 {
				kept, err := appFailover(d, topo, site, a, failover, up.Targets, tags)
				if err != nil {
					return err
				}
				local = append(local, kept...)
			}
			if len(local) > 0 {
				d.Services = append(d.Services, service{Name: "app-" + a.Name, Protocol: "http", Host: up.Name, Port: a.Port,
					Retries: 2, ConnectTimeout: 5000, ReadTimeout: 30000, WriteTimeout: 30000, Tags: tags, Routes: local,
					Plugins: appRateLimit(a, site, tags)})
			}
		}
		if len(forwarded) > 0 && link != nil {
			host := a.Name + ".hub"
			d.Upstreams = append(d.Upstreams, hubAppUpstream(host, a, forwarded, link.up, tags))
			svc := service{Name: "app-" + a.Name + "-hub", Retries: 1, ConnectTimeout: 5000, ReadTimeout: 30000, WriteTimeout: 30000, Tags: tags, Routes: forwarded,
				Plugins: appRateLimit(a, site, tags)}
			link.apply(&svc)
			svc.Host = host
			d.Services = append(d.Services, svc)
		}
	}
	return nil
}

// appRateLimit is the rate-limiting plugin of an app's client-facing services at
// site (x-sitectl.rate_limit with its site and environment layers and the site's
// values.<app>.rate_limit, as /api's values.kong.rate_limit), none without a limit.
func appRateLimit(a *sites.App, site *sites.Site, tags []string) []plugin {
	n := a.RateLimitAt(site.Name)
	if n <= 0 {
		return nil
	}
	return []plugin{rateLimit(n, tags)}
}

// hubAppUpstream is a spoke's upstream for an app's routes forwarded to the hub: the
// hub's Kong nodes (the targets of /admin's upstream, same TLS verification), health
// checked at the app's own readiness through the hub's Kong, so a forwarded route's
// health is the app's, not the hub admin's. A readiness path that no route of the
// app serves cannot be reached through the hub's Kong: the first forwarded route's
// path is probed then, and any answer but a server error counts (the hub's Kong and
// the app answer).
func hubAppUpstream(name string, a *sites.App, forwarded []route, hub upstream, tags []string) upstream {
	path := a.Readiness
	if path == "" {
		path = a.Liveness
	}
	ok := []int{200}
	if !servedBy(path, forwarded) {
		path = forwarded[0].Paths[0]
		ok = []int{200, 201, 202, 204, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405}
	}
	hc := checks("https", path, ok)
	hc.Active.HTTPSVerifyCertificate = hub.Healthchecks.Active.HTTPSVerifyCertificate
	up := upstream{Name: name, Algorithm: "round-robin", Tags: tags, Healthchecks: hc}
	for _, t := range hub.Targets {
		t.Tags = append(clone(t.Tags), "app-"+a.Name)
		up.Targets = append(up.Targets, t)
	}
	return up
}

// servedBy says whether a request for path matches one of routes' path prefixes.
func servedBy(path string, routes []route) bool {
	if path == "" {
		return false
	}
	for _, r := range routes {
		for _, p := range r.Paths {
			if strings.HasPrefix(path, p) {
				return true
			}
		}
	}
	return false
}

// appTargets are an app's upstream targets at a site: its entry service, and with a
// canary the canary service, weighted so that the canary gets its percentage of
// the requests (scaled by the other side's replicas when the service's names
// resolve to every task, endpoint_mode dnsrr, as canaryWeights).
func appTargets(a *sites.App, site *sites.Site, tags []string) []target {
	as := a.Sites[site.Name]
	appTags := append(clone(tags), "app-"+a.Name)
	stable := target{Target: targets.Addr(a.Name+"_"+a.Service, a.Port), Weight: 100, Tags: appTags}
	c := as.Canary
	if c == nil {
		return []target{stable}
	}
	stableW, canaryW := 100-c.Weight, c.Weight
	if a.EndpointModeAt(site) == "dnsrr" {
		stableW, canaryW = stableW*c.Replicas, canaryW*as.Replicas
	}
	stable.Weight, stable.Tags = stableW, append(clone(appTags), "stable")
	return []target{stable, {Target: targets.Addr(a.Name+"_"+a.CanaryService(), a.Port), Weight: canaryW, Tags: append(clone(appTags), "canary")}}
}
