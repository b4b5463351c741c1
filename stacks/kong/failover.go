package kong

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// Failover at the gateway (docs/gateway.md). Kong OSS 3.x has no priority or
// backup targets, so /api's upstream holds the local API at a weight far above the
// peers' Kong nodes: while the local target is healthy nearly every request goes
// to it (a share of 1 in LocalWeight per peer weight goes to a peer, and a write a
// peer serves is owned by that peer, so ownership holds); when the active
// (readiness) or passive checks mark it unhealthy, Kong's balancer skips it and
// only the peers are left; when the readiness probe succeeds again, it is back.
//
// Peer traffic goes to the peer's Kong over the tunnel (the peer's API publishes
// no port) with the header ViaHeader naming the sending site. The peer's Kong
// sends such requests to its own API only (route api-peer, upstream
// django-api.own without failover targets), so a request crosses at most one
// site, and only from peer Kong nodes (ip-restriction).
const (
	// ViaHeader carries the site whose gateway sent a failover request.
	ViaHeader = "X-Sitectl-Via"
	// LocalWeight is the local API target's weight in /api's upstream.
	LocalWeight = 10000
	// ownUpstream is the local API without failover targets: the upstream of the
	// route failover requests arrive on, and of the hub's /admin.
	ownUpstream = "django-api.own"
	// apiInterval is the active probe interval of /api's upstreams, in seconds:
	// the readiness probe fails unhealthy.http_failures (3) times before the local
	// target is skipped, so detection takes about 3 intervals.
	apiInterval = 2
)

// FailoverPeers returns the sites whose API takes site's /api while site's API is
// not ready, first choice first: values.kong.failover, or by default every site
// site has a tunnel to that runs kong and django-api, the hub first. An empty
// list (values.kong.failover: []) turns failover off.
func FailoverPeers(topo *sites.Topology, site *sites.Site) ([]*sites.Site, error) {
	return orderedPeers(topo, site, func(p *sites.Site, explicit bool) (bool, error) {
		if p.HasStack(Name) && p.HasStack("django-api") {
			return true, nil
		}
		if explicit {
			return false, fmt.Errorf("site %s: values.kong.failover names %s, which does not run both kong and django-api; remove it from the list", site.Name, p.Name)
		}
		return false, nil
	})
}

// orderedPeers is site's failover order (failoverOrder) as sites, keeping those
// keep accepts (explicit: the order is values.kong.failover's).
func orderedPeers(topo *sites.Topology, site *sites.Site, keep func(p *sites.Site, explicit bool) (bool, error)) ([]*sites.Site, error) {
	names, explicit, err := failoverOrder(topo, site)
	if err != nil {
		return nil, err
	}
	var out []*sites.Site
	for _, n := range names {
		p, err := failoverPeer(topo, site, n, explicit)
		if err != nil {
			return nil, err
		}
		ok, err := keep(p, explicit)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// failoverOrder is site's failover order: values.kong.failover (explicit), else
// every site site has a tunnel to, the hub first.
func failoverOrder(topo *sites.Topology, site *sites.Site) (names []string, explicit bool, err error) {
	s, err := ReadSettings(topo, site)
	if err != nil {
		return nil, false, err
	}
	if s.Failover != nil {
		return s.Failover, true, nil
	}
	for _, l := range topo.LinksOf(site.Name) {
		names = append(names, l.Other(site.Name))
	}
	slices.SortStableFunc(names, func(a, b string) int {
		switch {
		case a == topo.Hub && b != topo.Hub:
			return -1
		case b == topo.Hub && a != topo.Hub:
			return 1
		}
		return 0
	})
	return names, false, nil
}

// failoverPeer is the site named n of site's failover order, refused when it is no
// site, site itself, or (in an explicit list) a site no tunnel links to site.
func failoverPeer(topo *sites.Topology, site *sites.Site, n string, explicit bool) (*sites.Site, error) {
	p := topo.Site(n)
	switch {
	case p == nil:
		return nil, fmt.Errorf("site %s: values.kong.failover names %q, which is not a site (sites: %v); list peer sites, or [] for no failover", site.Name, n, topo.SiteNames())
	case p.Name == site.Name:
		return nil, fmt.Errorf("site %s: values.kong.failover names the site itself; list peer sites, or [] for no failover", site.Name)
	case explicit && !linked(topo, site.Name, n):
		return nil, fmt.Errorf("site %s: values.kong.failover names %s, but no tunnel links the two sites; add a direct link or remove it from the list", site.Name, n)
	}
	return p, nil
}

func linked(topo *sites.Topology, a, b string) bool {
	for _, l := range topo.LinksOf(a) {
		if l.Other(a) == b {
			return true
		}
	}
	return false
}

// failoverTargets are /api's peer targets for site: every Kong node of each peer
// on its plain-HTTP proxy port (the tunnel encrypts it), the first peer weighted
// highest.
func failoverTargets(topo *sites.Topology, peers []*sites.Site, tags []string) ([]target, error) {
	var out []target
	for i, p := range peers {
		ps, err := ReadSettings(topo, p)
		if err != nil {
			continue // the peer's own render reports its settings' error, once
		}
		nodes, err := targets.Matching(p, ps.Constraints)
		if err != nil {
			return nil, fmt.Errorf("kong: failover to %s: %w", p.Name, err)
		}
		for _, n := range nodes {
			out = append(out, target{Target: targets.Addr(n.Address, ps.HTTPPort), Weight: len(peers) - i,
				Tags: append(clone(tags), "failover", "peer-"+p.Name)})
		}
	}
	return out, nil
}

// addFailover adds, at site, the failover targets to /api's upstream (with the
// header that marks peer-bound requests) and the route on which this site serves
// its peers' failover requests from its own API only.
func addFailover(d *declarative, topo *sites.Topology, site *sites.Site, s Settings, tags []string) error {
	peers, err := FailoverPeers(topo, site)
	if err != nil {
		return err
	}
	api := &d.Upstreams[slices.IndexFunc(d.Upstreams, func(u upstream) bool { return u.Name == apiUpstream })]
	two := apiInterval
	api.Healthchecks.Active.Healthy.Interval = &two
	api.Healthchecks.Active.Unhealthy.Interval = &two
	local := slices.Clone(api.Targets) // before failover: the local API only
	svc := &d.Services[slices.IndexFunc(d.Services, func(s service) bool { return s.Name == "api" })]
	if len(peers) > 0 && !strings.HasPrefix(s.HealthPath, "/api/") {
		return fmt.Errorf("kong at %s: values.kong.api.health_path is %q; with failover to %s it must be under /api/ (the peer's Kong routes the probe to the peer's API), such as /api/ready; or set values.kong.failover: []", site.Name, s.HealthPath, peers[0].Name)
	}
	if len(peers) > 0 {
		// The local targets (stable and canary keep their split) far above the peers.
		for i := range api.Targets {
			api.Targets[i].Weight = min(api.Targets[i].Weight*(LocalWeight/100), 65535)
		}
		peerTargets, err := failoverTargets(topo, peers, tags)
		if err != nil {
			return err
		}
		api.Targets = append(api.Targets, peerTargets...)
		// The active probe reaches a peer's API through the peer's Kong as a
		// failover request would.
		api.Healthchecks.Active.Headers = map[string][]string{ViaHeader: {site.Name}}
		svc.Plugins = append(svc.Plugins, plugin{Name: "request-transformer", Tags: tags, Config: map[string]any{
			"remove": map[string]any{"headers": []string{ViaHeader}},
			"add":    map[string]any{"headers": []string{ViaHeader + ":" + site.Name}}}})
	}
	// Who may send failover requests here: sites that list this one.
	var from []string
	var allow []string
	for _, o := range topo.Sites {
		if o.Name == site.Name || !o.HasStack(Name) {
			continue
		}
		ops, err := FailoverPeers(topo, o)
		if err != nil {
			continue // o's own render reports it, once
		}
		if !slices.ContainsFunc(ops, func(p *sites.Site) bool { return p.Name == site.Name }) {
			continue
		}
		os, err := ReadSettings(topo, o)
		if err != nil {
			continue
		}
		nodes, err := targets.Matching(o, os.Constraints)
		if err != nil {
			return fmt.Errorf("kong at %s: failover from %s: %w", site.Name, o.Name, err)
		}
		from = append(from, o.Name)
		for _, n := range nodes {
			allow = append(allow, n.Address)
		}
	}
	if len(from) == 0 && len(peers) == 0 {
		return nil
	}
	up := upstream{Name: ownUpstream, Algorithm: "round-robin", Tags: tags,
		Healthchecks: api.Healthchecks, Targets: local}
	up.Healthchecks.Active.Headers = nil
	d.Upstreams = append(d.Upstreams, up)
	if i := slices.IndexFunc(d.Services, func(s service) bool { return s.Name == "admin" }); i >= 0 && d.Services[i].Host == apiUpstream {
		d.Services[i].Host = ownUpstream // the hub's /admin is the hub's own
	}
	if len(from) == 0 {
		return nil
	}
	rt := route{Name: "api-peer", Paths: []string{"/api"}, Headers: map[string][]string{ViaHeader: from},
		Protocols: []string{"http", "https"}, StripPath: false, PreserveHost: true, HTTPSRedirectStatusCode: 308, Tags: tags}
	d.Services = append(d.Services, service{Name: "api-peer", Protocol: "http", Host: ownUpstream, Port: s.APIPort,
		Retries: 0, ConnectTimeout: 5000, ReadTimeout: 30000, WriteTimeout: 30000, Tags: tags,
		Routes:  []route{rt},
		Plugins: []plugin{{Name: "ip-restriction", Tags: tags, Config: map[string]any{"allow": allow, "status": 403}}}})
	return nil
}
