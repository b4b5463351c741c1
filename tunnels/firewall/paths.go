package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// PathKind is how a management connection of sitectl meets the gateway.
type PathKind string

// Path kinds.
const (
	// PathLocal: a unix socket on the machine sitectl runs on (the gateway host, or
	// the lab's sockets): no packet crosses the ruleset.
	PathLocal PathKind = "local"
	// PathFromGateway: dialled with the site's Reach, from the gateway host (the lab:
	// inside the gateway's network namespace):
	// it leaves through output (not filtered) and its replies come back through input.
	PathFromGateway PathKind = "from-gateway"
	// PathNetwork: a TCP connection from sitectl's address (gateway.firewall.
	// management_from) to the gateway or into the site LAN.
	PathNetwork PathKind = "network"
	// PathUnknown: named by a host name or a docker context: not checkable here.
	PathUnknown PathKind = "unknown"
)

// Path is one way sitectl reaches the site: the gateway's vici socket, an engine,
// a database.
type Path struct {
	What      string // "vici ssh://ops@10.10.0.1/var/run/charon.vici"
	Kind      PathKind
	Addr      netip.Addr
	Port      int
	Proto     string // tcp
	ToGateway bool   // the address is the gateway's own
}

func (p Path) String() string {
	if !p.Addr.IsValid() {
		return p.What
	}
	return fmt.Sprintf("%s (%s/%d)", p.What, p.Proto, p.Port)
}

// ManagementPaths lists the paths sitectl uses to reach the site: the gateway's vici
// socket, the site and node engines, the PostgreSQL and MongoDB endpoints.
// Databases are dialled from the gateway host when the site's Reach has a Dial (in
// the lab: from the gateway namespace).
func ManagementPaths(_ *sites.Topology, site *sites.Site) ([]Path, error) {
	gwAddrs := map[netip.Addr]bool{}
	for _, s := range []string{site.Gateway.LANAddress, site.Gateway.WANAddress} {
		if a, err := netip.ParseAddr(s); err == nil {
			gwAddrs[a] = true
		}
	}
	var out []Path
	add := func(what, rawURL string, defaultPort int) error {
		if rawURL == "" {
			return nil
		}
		u, err := url.Parse(rawURL)
		if err != nil {
			return fmt.Errorf("firewall %s: %s %q: %w", site.Name, what, rawURL, err)
		}
		p := Path{What: what + " " + rawURL, Proto: "tcp"}
		switch u.Scheme {
		case "unix", "npipe":
			p.Kind = PathLocal
		case "ssh", "tcp":
			if u.Scheme == "ssh" {
				defaultPort = 22
			}
			p.Port = defaultPort
			if u.Port() != "" {
				p.Port, _ = strconv.Atoi(u.Port())
			}
			a, err := netip.ParseAddr(u.Hostname())
			if err != nil {
				p.Kind = PathUnknown
				break
			}
			p.Kind, p.Addr, p.ToGateway = PathNetwork, a, gwAddrs[a]
		default:
			p.Kind = PathUnknown
		}
		out = append(out, p)
		return nil
	}
	if err := add("vici", site.Gateway.Vici, 22); err != nil {
		return nil, err
	}
	if site.Engine.Context != "" && site.Engine.Host == "" {
		out = append(out, Path{What: "engine context " + site.Engine.Context, Kind: PathUnknown})
	}
	if err := add("engine", site.Engine.Host, 2376); err != nil {
		return nil, err
	}
	for _, n := range site.Nodes {
		if n.Engine == "" || n.Engine == site.Engine.Host {
			continue
		}
		if err := add("engine of "+n.Name, n.Engine, 2376); err != nil {
			return nil, err
		}
	}
	db := func(what, hostport string) {
		host, port, err := net.SplitHostPort(hostport)
		p := Path{What: what + " " + hostport, Proto: "tcp", Kind: PathUnknown}
		if a, aerr := netip.ParseAddr(host); err == nil && aerr == nil {
			p.Addr, p.Port = a, atoi(port)
			p.Kind, p.ToGateway = PathNetwork, gwAddrs[a]
			if site.Reach.Dial != nil {
				p.Kind = PathFromGateway
			}
		}
		out = append(out, p)
	}
	if site.HasStack("postgres") && site.Postgres.Host != "" {
		db("postgres", net.JoinHostPort(site.Postgres.Host, strconv.Itoa(site.Postgres.Port)))
	}
	if site.HasStack("mongo") {
		for _, m := range site.Mongo.Members {
			hp := m.Host
			if !strings.Contains(hp, ":") {
				hp += ":27017"
			}
			db("mongo", hp)
		}
	}
	return out, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
