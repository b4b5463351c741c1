package sites

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// validateCross checks the sites against each other: one hub, subnets that do not
// overlap, tunnels to the hub, settings every site agrees on, unique gateway ids,
// and the MongoDB replica set as a whole.
func validateCross(c *collector, t *Topology) {
	hubs := checkHubs(c, t)
	checkOverlaps(c, t)
	if len(hubs) == 1 {
		checkHubLinks(c, t, hubs[0])
	}
	checkAgreement(c, t)
	checkGatewayIDs(c, t)
	checkMongoMembers(c, t)
}

// checkHubs reports unless exactly one site is the hub, and returns the hubs.
func checkHubs(c *collector, t *Topology) []string {
	var hubs []string
	for _, s := range t.Sites {
		if s.Role == RoleHub {
			hubs = append(hubs, s.Name)
		}
	}
	switch {
	case len(hubs) == 0 && len(t.Sites) > 0:
		c.errf("", "", "role", "no site has role hub; set role: hub in exactly one site file (the cloud site, usually)")
	case len(hubs) > 1:
		for _, h := range hubs {
			c.errf(t.Origin(h, "role"), h, "role", "sites %s are all hubs; exactly one site is the hub", strings.Join(hubs, ", "))
		}
	}
	return hubs
}

type namedPrefix struct {
	site, key string
	p         netip.Prefix
}

// checkOverlaps reports LANs that overlap between sites (tunnels route them) and,
// within a site, overlays that overlap the LAN or each other.
func checkOverlaps(c *collector, t *Topology) {
	var lans []namedPrefix
	for _, s := range t.Sites {
		if p, err := netip.ParsePrefix(s.LAN); err == nil {
			lans = append(lans, namedPrefix{s.Name, "lan", p.Masked()})
		}
		var local []namedPrefix
		if p, err := netip.ParsePrefix(s.LAN); err == nil {
			local = append(local, namedPrefix{s.Name, "lan", p.Masked()})
		}
		for _, n := range slices.Sorted(maps.Keys(s.Networks)) {
			if p, err := netip.ParsePrefix(s.Networks[n].Subnet); err == nil {
				local = append(local, namedPrefix{s.Name, "networks." + n + ".subnet", p.Masked()})
			}
		}
		overlaps(c, t, local)
	}
	overlaps(c, t, lans)
}

func overlaps(c *collector, t *Topology, ps []namedPrefix) {
	for i := 0; i < len(ps); i++ {
		for j := i + 1; j < len(ps); j++ {
			a, b := ps[i], ps[j]
			if a.p.Overlaps(b.p) {
				c.errf(t.Origin(b.site, b.key), b.site, b.key, "%s overlaps %s (%s of site %s); subnets must not overlap", b.p, a.p, a.key, a.site)
			}
		}
	}
}

// checkHubLinks reports every spoke without a tunnel to the hub (named by either
// side's tunnel.peers).
func checkHubLinks(c *collector, t *Topology, hub string) {
	linked := map[string]bool{}
	for _, s := range t.Sites {
		for _, p := range s.Tunnel.Peers {
			linked[s.Name+"|"+p], linked[p+"|"+s.Name] = true, true
		}
	}
	for _, s := range t.Sites {
		if s.Name != hub && !linked[s.Name+"|"+hub] {
			c.errf(t.Origin(s.Name, "tunnel.peers"), s.Name, "tunnel.peers", "has no tunnel to the hub %q; add %s to tunnel.peers", hub, hub)
		}
	}
}

// checkAgreement reports settings every site must agree on.
func checkAgreement(c *collector, t *Topology) {
	agree := func(key string, get func(*Site) string, want func(*Site) bool) {
		first := ""
		firstSite := ""
		for _, s := range t.Sites {
			if !want(s) {
				continue
			}
			v := get(s)
			if firstSite == "" {
				first, firstSite = v, s.Name
				continue
			}
			if v != first {
				c.errf(t.Origin(s.Name, key), s.Name, key, "is %q here but %q at %s; every site must agree", v, first, firstSite)
			}
		}
	}
	hasPG := func(s *Site) bool { return s.HasStack("postgres") }
	hasMongo := func(s *Site) bool { return s.HasStack("mongo") }
	agree("postgres.tables", func(s *Site) string { return strings.Join(s.Postgres.Tables, ",") }, hasPG)
	agree("mongo.replica_set", func(s *Site) string { return s.Mongo.ReplicaSet }, hasMongo)
}

// checkGatewayIDs reports gateways that share an identity.
func checkGatewayIDs(c *collector, t *Topology) {
	ids := map[string]string{}
	for _, s := range t.Sites {
		if o, ok := ids[s.Gateway.ID]; ok && s.Gateway.ID != "" {
			c.errf(t.Origin(s.Name, "gateway.id"), s.Name, "gateway.id", "%q is also %s's gateway id; each gateway needs its own", s.Gateway.ID, o)
		}
		ids[s.Gateway.ID] = s.Name
	}
}

// checkMongoMembers counts the MongoDB voting members across the whole replica set
// (votes beyond 0 or 1 are reported per member; here a member votes or not).
func checkMongoMembers(c *collector, t *Topology) {
	voters, members, arbiters := 0, 0, 0
	for _, s := range t.Sites {
		if !s.HasStack("mongo") {
			continue
		}
		for _, m := range s.Mongo.Members {
			members++
			if m.VotesOrDefault() > 0 {
				voters++
			}
			if m.Arbiter {
				arbiters++
			}
		}
	}
	switch {
	case voters > 7:
		c.errf("", "", "mongo.members", "%d voting members; a replica set allows at most 7 (set votes: 0 on the others)", voters)
	case voters > 0 && voters%2 == 0:
		c.warnf("", "", "mongo.members", "%d voting members (even): a partition can leave no side with a majority; use an odd number", voters)
	}
	if members > 50 {
		c.errf("", "", "mongo.members", "%d members; a replica set allows at most 50", members)
	}
	if arbiters > 0 {
		c.warnf("", "", "mongo.members", "arbiter allowed: with an arbiter the implicit default write concern drops to w:1; sitectl still sets majority explicitly")
	}
}
