package mongo

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/sitectl/sitectl/sites"
)

// Check validates the replica set layout beyond what sites.Load checks (odd number
// of voters, at most 7, arbiters only when allowed): member settings MongoDB would
// refuse, and layouts that load but defeat the design. Keys are the site config keys
// to fix.
func Check(topo *sites.Topology) sites.Problems {
	var ps sites.Problems
	add := func(sev sites.Severity, site, key, format string, args ...any) {
		ps = append(ps, sites.Problem{Severity: sev, File: topo.Origin(site, key), Site: site, Key: key, Message: fmt.Sprintf(format, args...)})
	}
	cfg, err := Build(topo)
	if err != nil {
		return sites.Problems{{Severity: sites.SevError, Key: "mongo.members", Message: err.Error()}}
	}
	seen := map[string]string{}
	electable, hubTop, spokeTop := 0, -1.0, -1.0
	spokeTopSite := ""
	for _, s := range topo.Sites {
		if !s.HasStack("mongo") {
			continue
		}
		if s.Mongo.KeyFile.IsZero() {
			add(sites.SevError, s.Name, "mongo.keyfile", "is not set; members authenticate each other with a keyfile: name it (env, file or docker_secret)")
		}
		switch {
		case s.Mongo.User != "" && s.Mongo.Password.IsZero():
			add(sites.SevError, s.Name, "mongo.password", "mongo.user %s has no password reference: name it (env or file)", s.Mongo.User)
		case s.Mongo.User == "" && !s.Mongo.KeyFile.IsZero():
			add(sites.SevWarning, s.Name, "mongo.user", "is not set: with keyfile auth on, mongod accepts replSetInitiate/replSetReconfig only from an authenticated user; set mongo.user, mongo.password and secrets.mongo-password (the stack creates the user)")
		}
		if s.Mongo.MaxPartition <= 0 {
			add(sites.SevWarning, s.Name, "mongo.max_partition", "is not set; sitectl cannot check the oplog window against the longest partition to survive (e.g. 24h)")
		}
		for i, mm := range s.Mongo.Members {
			key := fmt.Sprintf("mongo.members[%d]", i)
			m := cfg.Member(mm.Host)
			if o, dup := seen[mm.Host]; dup {
				add(sites.SevError, s.Name, key+".host", "%s is also a member at %s; each member has its own host:port", mm.Host, o)
			}
			seen[mm.Host] = s.Name
			host, port, err := net.SplitHostPort(mm.Host)
			if p, perr := strconv.Atoi(port); err != nil || perr != nil || p <= 0 || p > 65535 || host == "" {
				add(sites.SevError, s.Name, key+".host", "%q is not host:port (e.g. 10.10.0.12:27017)", mm.Host)
			} else if ip, err := netip.ParseAddr(host); err == nil && s.LAN != "" {
				if lan, err := netip.ParsePrefix(s.LAN); err == nil && !lan.Contains(ip) {
					add(sites.SevWarning, s.Name, key+".host", "%s is outside the site LAN %s; other sites reach members through the tunnels, which carry only LAN subnets", host, s.LAN)
				}
			}
			checkMemberSettings(add, s.Name, key, m)
			if m.Electable() {
				electable++
				if s.IsHub() {
					hubTop = max(hubTop, m.Priority)
				} else if m.Priority > spokeTop {
					spokeTop, spokeTopSite = m.Priority, s.Name
				}
			}
		}
	}
	if electable == 0 {
		ps = append(ps, sites.Problem{Severity: sites.SevError, Key: "mongo.members", Message: "no member can become primary (every member is hidden, delayed, an arbiter, or has priority 0 or no vote)"})
	}
	if hubTop >= 0 && spokeTop > hubTop {
		add(sites.SevWarning, spokeTopSite, "mongo.members", "a member at %s has priority %g, above the hub's %g; the cloud is meant to hold the highest priority so the primary stays where every spoke reaches it", spokeTopSite, spokeTop, hubTop)
	}
	if dataVoters := cfg.DataVoters(); dataVoters-cfg.WriteMajority() < cfg.Voters()-cfg.Majority() {
		ps = append(ps, sites.Problem{Severity: sites.SevWarning, Key: "mongo.members",
			Message: fmt.Sprintf("the set survives losing %d voting member(s) for elections but only %d for majority writes (%d of %d data-bearing voters must acknowledge): an arbiter keeps a primary that cannot take majority writes", cfg.Voters()-cfg.Majority(), dataVoters-cfg.WriteMajority(), cfg.WriteMajority(), dataVoters)})
	}
	votes := map[string]int{}
	for _, m := range cfg.Members {
		if site := SiteOfMember(topo, m); site != "" {
			votes[site] += m.Votes
		}
	}
	for _, s := range topo.Sites {
		if !s.IsHub() && votes[s.Name] >= cfg.Majority() {
			add(sites.SevWarning, s.Name, "mongo.members", "%s alone holds %d of %d votes, a majority: when it is cut off no other site can elect a primary; spread the votes (1-1-1 or 2-2-1 with the cloud)", s.Name, votes[s.Name], cfg.Voters())
		}
	}
	return ps
}

// SiteOfMember returns the site a member is placed at: its site tag, else the site
// whose config lists its host.
func SiteOfMember(topo *sites.Topology, m Member) string {
	if s := m.Site(); s != "" {
		return s
	}
	return SiteOf(topo, m.Host)
}

// problemAdder adds a problem at a site's key.
type problemAdder func(sev sites.Severity, site, key, format string, args ...any)

// checkMemberSettings checks one member's settings (at key of site) against what
// MongoDB accepts.
func checkMemberSettings(add problemAdder, site, key string, m *Member) {
	if m.Votes != 0 && m.Votes != 1 {
		add(sites.SevError, site, key+".votes", "is %d; a member has 0 or 1 vote", m.Votes)
	}
	if m.Priority < 0 || m.Priority > 1000 {
		add(sites.SevError, site, key+".priority", "is %g; allowed 0 to 1000", m.Priority)
	}
	if m.Votes == 0 && m.Priority > 0 {
		add(sites.SevError, site, key+".priority", "is %g on a non-voting member; a member with votes: 0 must have priority 0", m.Priority)
	}
	if m.Hidden && m.Priority > 0 {
		add(sites.SevError, site, key+".priority", "is %g on a hidden member; hidden members must have priority 0", m.Priority)
	}
	if m.SecondaryDelaySecs > 0 {
		if m.Priority > 0 {
			add(sites.SevError, site, key+".priority", "is %g on a delayed member; delayed members must have priority 0", m.Priority)
		}
		if !m.Hidden {
			add(sites.SevWarning, site, key+".hidden", "a delayed member should be hidden, or applications may read stale data from it")
		}
	}
	if m.ArbiterOnly {
		if m.Priority > 0 {
			add(sites.SevError, site, key+".priority", "is %g on an arbiter; arbiters have priority 0", m.Priority)
		}
		if m.Hidden || m.SecondaryDelaySecs > 0 {
			add(sites.SevError, site, key, "an arbiter cannot be hidden or delayed")
		}
	}
}
