package apps

import (
	"strings"

	composetypes "github.com/docker/cli/cli/compose/types"

	"github.com/sitectl/sitectl/sites"
)

// checkFailoverProbe checks that an app with a failover route can be probed at a
// peer: Kong's readiness probe of a peer target goes through the peer's Kong, which
// forwards only the app's failover routes, so the readiness path (else the liveness
// path) must be under one of them.
func checkFailoverProbe(c *collector, rel string, a *sites.App) {
	if !a.HasFailover() {
		return
	}
	probe, key := a.Readiness, "health.readiness"
	if probe == "" {
		probe, key = a.Liveness, "health.liveness"
	}
	var paths []string
	for _, r := range a.Routes {
		if r.Failover != sites.FailoverPeers || r.At != sites.RouteLocal {
			continue
		}
		paths = append(paths, r.Path)
		if probe != "" && strings.HasPrefix(probe, r.Path) {
			return
		}
	}
	if probe == "" {
		c.errf(rel, "", Extension+".health.readiness", "the app has a route with failover: peers but no readiness path: Kong takes the local app out of rotation when its readiness probe fails; set %s.health.readiness (under %s)", Extension, strings.Join(paths, " or "))
		return
	}
	c.errf(rel, "", Extension+"."+key, "%q is under no route with failover: peers (%s): Kong probes a peer site's app through the peer's Kong, which forwards only those routes; use a readiness path under one of them (such as %s/ready)", probe, strings.Join(paths, ", "), strings.TrimSuffix(paths[0], "/"))
}

// checkPlacementAndMongo checks x-sitectl.placement, x-sitectl.rate_limit and
// x-sitectl.mongo and sets them on a.
func checkPlacementAndMongo(c *collector, rel string, topo *sites.Topology, a *sites.App, d decl, svc *composetypes.ServiceConfig) {
	switch d.Placement {
	case "", sites.PlacementAppNodes:
		a.Placement = d.Placement
	default:
		c.errf(rel, "", Extension+".placement", "%q: allowed: %s (the site's nodes labelled role=app, else the site's own nodes), or leave it out and write deploy.placement in the compose file", d.Placement, sites.PlacementAppNodes)
	}
	switch {
	case d.RateLimit < 0:
		c.errf(rel, "", Extension+".rate_limit", "%d: requests per minute per client address (1 or more), or leave it out for no limit", d.RateLimit)
	case d.RateLimit > 0 && len(a.Routes) == 0:
		c.errf(rel, "", Extension+".rate_limit", "limits the app's routes, and the app has none: add %s.routes or drop rate_limit", Extension)
	default:
		a.RateLimit = d.RateLimit
		// The environment's, at a site forwarding the app's hub routes without running
		// the app (checked at the sites that run it, resolveSiteLayers).
		if n := d.Env[topo.Env].RateLimit; n != nil && *n >= 0 && (*n == 0 || len(a.Routes) > 0) {
			a.RateLimit = *n
		}
	}
	if !d.Mongo {
		return
	}
	a.Mongo = true
	if _, own := svc.Environment[sites.AppMongoEnv]; own {
		c.errf(rel, "", "services."+svc.Name+".environment."+sites.AppMongoEnv, "is set by sitectl when %s.mongo is true: remove it from the compose file, or drop %s.mongo", Extension, Extension)
	}
	for _, s := range topo.Sites {
		if len(s.Mongo.Members) > 0 {
			return
		}
	}
	c.errf(rel, "", Extension+".mongo", "no site lists mongo.members: MONGO_URI would name no member; add the replica set's members to the sites (mongo.members) or drop %s.mongo", Extension)
}
