package kong

import (
	"fmt"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// Failover of an app's routes (x-sitectl.routes[].failover: peers), as /api's
// (failover.go, docs/design.md decision 15): at a site running the app, the
// failover routes go to the service app-<app>-failover, whose upstream
// <app>.failover holds the local targets far above the peers' Kong nodes and
// probes readiness with the via header; a site serves its peers' failover requests
// on app-<app>-peer from its own <app>.app only, from their Kong nodes only, so a
// request crosses at most one site.

// AppFailoverPeers returns the sites whose Kong takes app's failover routes at site
// while the app is not ready there, first choice first: the site's failover order
// (values.kong.failover, else every site it has a tunnel to, the hub first), keeping
// the sites that run kong and the app. values.kong.failover: [] turns it off.
func AppFailoverPeers(topo *sites.Topology, site *sites.Site, a *sites.App) ([]*sites.Site, error) {
	// The order is the site's, for every app: a peer that does not run this app
	// is skipped (apps run at a subset of the sites).
	return orderedPeers(topo, site, func(p *sites.Site, _ bool) (bool, error) {
		_, runs := a.Sites[p.Name]
		return runs && p.HasStack(Name), nil
	})
}

// appFailover wires app a's failover routes at site: with peers, routes move from
// the app's own service to app-<app>-failover (upstream <app>.failover: the local
// targets and the peers' Kong nodes); the site serves the failover requests of the
// peers that send a's routes to it on app-<app>-peer. It returns the routes left to
// the app's own service.
func appFailover(d *declarative, topo *sites.Topology, site *sites.Site, a *sites.App, failover []route, local []target, tags []string) ([]route, error) {
	peers, err := AppFailoverPeers(topo, site, a)
	if err != nil {
		return nil, err
	}
	var kept []route
	if len(peers) == 0 {
		kept = failover
	} else {
		up := upstream{Name: a.Name + ".failover", Algorithm: "round-robin", Tags: tags,
			Healthchecks: checks("http", probePath(a), []int{200})}
		two := apiInterval
		up.Healthchecks.Active.Healthy.Interval = &two
		up.Healthchecks.Active.Unhealthy.Interval = &two
		up.Healthchecks.Active.Headers = map[string][]string{ViaHeader: {site.Name}}
		for _, t := range local {
			t.Weight = min(t.Weight*(LocalWeight/100), 65535)
			up.Targets = append(up.Targets, t)
		}
		peerTargets, err := failoverTargets(topo, peers, tags)
		if err != nil {
			return nil, err
		}
		up.Targets = append(up.Targets, peerTargets...)
		d.Upstreams = append(d.Upstreams, up)
		d.Services = append(d.Services, service{Name: "app-" + a.Name + "-failover", Protocol: "http", Host: up.Name, Port: a.Port,
			Retries: 2, ConnectTimeout: 5000, ReadTimeout: 30000, WriteTimeout: 30000, Tags: tags, Routes: failover,
			Plugins: append(appRateLimit(a, site, tags), plugin{Name: "request-transformer", Tags: tags, Config: map[string]any{
				"remove": map[string]any{"headers": []string{ViaHeader}},
				"add":    map[string]any{"headers": []string{ViaHeader + ":" + site.Name}}}})})
	}
	from, allow, err := appFailoverSenders(topo, site, a)
	if err != nil || len(from) == 0 {
		return kept, err
	}
	peer := service{Name: "app-" + a.Name + "-peer", Protocol: "http", Host: a.Name + ".app", Port: a.Port,
		Retries: 0, ConnectTimeout: 5000, ReadTimeout: 30000, WriteTimeout: 30000, Tags: tags,
		Plugins: []plugin{{Name: "ip-restriction", Tags: tags, Config: map[string]any{"allow": allow, "status": 403}}}}
	for _, r := range failover {
		r.Name = "app-" + a.Name + "-peer" + r.Name[len("app-"+a.Name):]
		r.Headers = map[string][]string{ViaHeader: from}
		r.Protocols = []string{"http", "https"}
		peer.Routes = append(peer.Routes, r)
	}
	d.Services = append(d.Services, peer)
	return kept, nil
}

// appFailoverSenders are the sites that send app a's failover routes to site (whose
// AppFailoverPeers list it) and their Kong nodes' addresses.
func appFailoverSenders(topo *sites.Topology, site *sites.Site, a *sites.App) (from, allow []string, err error) {
	for _, o := range topo.Sites {
		if _, runs := a.Sites[o.Name]; o.Name == site.Name || !runs || !o.HasStack(Name) {
			continue
		}
		ops, err := AppFailoverPeers(topo, o, a)
		if err != nil {
			continue // o's own render reports it, once
		}
		sends := false
		for _, p := range ops {
			sends = sends || p.Name == site.Name
		}
		os, err := ReadSettings(topo, o)
		if !sends || err != nil {
			continue
		}
		nodes, err := targets.Matching(o, os.Constraints)
		if err != nil {
			return nil, nil, fmt.Errorf("kong at %s: app %s's failover from %s: %w", site.Name, a.Name, o.Name, err)
		}
		from = append(from, o.Name)
		for _, n := range nodes {
			allow = append(allow, n.Address)
		}
	}
	return from, allow, nil
}

// probePath is the path Kong probes an app's readiness at: readiness, else
// liveness, else /.
func probePath(a *sites.App) string {
	switch {
	case a.Readiness != "":
		return a.Readiness
	case a.Liveness != "":
		return a.Liveness
	}
	return "/"
}
