// Package tunnels turns the topology into strongSwan site-to-site IPsec: one
// swanctl.conf and strongswan.conf per site gateway, a CA and gateway certificates
// (crypto/x509), and control and status of charon over vici (govici) — never by
// parsing swanctl output. The same model renders the files and the vici messages.
package tunnels

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/sitectl/sitectl/sites"
)

// Gateway is the desired strongSwan configuration of one site's gateway.
type Gateway struct {
	Site string `json:"site"`
	Env  string `json:"environment"`
	// ID is the IKE identity and certificate SAN.
	ID  string `json:"id"`
	WAN string `json:"wan_address"`
	LAN string `json:"lan"`
	// Vici is where sitectl reaches charon: unix:///path or ssh://user@host/path.
	Vici string `json:"vici"`
	// IPsec is the data path: kernel (kernel-netlink) or libipsec.
	IPsec string `json:"ipsec"`
	Conns []Conn `json:"conns"`
	// Notes are adjustments the operator should know about (rendered as comments).
	Notes []string `json:"notes,omitempty"`
}

// Conn is one IKE connection of a gateway: one link seen from one end.
type Conn struct {
	// Name is the link name ("douala-cloud"), the same on both gateways.
	Name string     `json:"name"`
	Link sites.Link `json:"link"`
	// Peer is the site at the far end.
	Peer         string   `json:"peer"`
	LocalAddr    string   `json:"local_addr"`
	RemoteAddr   string   `json:"remote_addr"`
	LocalID      string   `json:"local_id"`
	RemoteID     string   `json:"remote_id"`
	Auth         string   `json:"auth"` // x509 | psk
	IKEProposals []string `json:"ike_proposals"`
	ESPProposals []string `json:"esp_proposals"`
	DPDDelay     string   `json:"dpd_delay"`
	StartAction  string   `json:"start_action"`
	// Child is the CHILD_SA name (ChildName), unique per gateway.
	Child    string   `json:"child"`
	LocalTS  []string `json:"local_ts"`
	RemoteTS []string `json:"remote_ts"`
	// PSK names the pre-shared key when Auth is psk (a reference, never the value).
	PSK sites.SecretRef `json:"psk,omitzero"`
}

// ChildName is the CHILD_SA name of a connection: "<link>-lan-<version>", where the
// version is a short hash of the settings charon's list-conns does not report (IKE
// and ESP proposals, start action, DPD delay, auth). A plan compares child names, so
// a change of any of them shows as a reload. Names stay unique per gateway.
func ChildName(c Conn) string {
	h := sha256.Sum256([]byte(strings.Join([]string{
		strings.Join(c.IKEProposals, ","), strings.Join(c.ESPProposals, ","),
		c.StartAction, c.DPDDelay, c.Auth}, "|")))
	return fmt.Sprintf("%s-lan-%x", c.Name, h[:3])
}

// Conn returns the gateway's connection for a link, or nil.
func (g *Gateway) Conn(link string) *Conn {
	for i := range g.Conns {
		if g.Conns[i].Name == link {
			return &g.Conns[i]
		}
	}
	return nil
}

// Build derives every gateway's configuration from the topology and checks it:
// traffic selectors must not overlap, both ends of a link must agree on the
// authentication. One error lists every problem; nothing is half-built.
func Build(topo *sites.Topology) ([]*Gateway, error) {
	var gws []*Gateway
	var problems []string
	for _, s := range topo.Sites {
		g, errs := buildGateway(topo, s)
		problems = append(problems, errs...)
		gws = append(gws, g)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("tunnel configuration is invalid:\n  %s", strings.Join(problems, "\n  "))
	}
	return gws, nil
}

// BuildSite is Build for one site.
func BuildSite(topo *sites.Topology, site string) (*Gateway, error) {
	gws, err := Build(topo)
	if err != nil {
		return nil, err
	}
	for _, g := range gws {
		if g.Site == site {
			return g, nil
		}
	}
	return nil, fmt.Errorf("no site %q (sites: %s)", site, strings.Join(topo.SiteNames(), ", "))
}

func buildGateway(topo *sites.Topology, s *sites.Site) (*Gateway, []string) {
	g := &Gateway{
		Site: s.Name, Env: topo.Env, ID: s.Gateway.ID, WAN: s.Gateway.WANAddress,
		LAN: s.LAN, Vici: s.Gateway.Vici, IPsec: s.Tunnel.IPsec,
	}
	var problems []string
	libipsecTrap := s.Tunnel.StartAction == "trap" && s.Tunnel.IPsec == "libipsec"
	if libipsecTrap {
		// kernel-libipsec raises no acquire for a trap policy: packets are dropped and
		// no IKE_SA is started, so trap would leave the tunnel down forever.
		g.Notes = append(g.Notes, "start_action trap is not supported with kernel-libipsec (it raises no acquire): "+
			"the link's first end (the spoke) uses start, the other end none (it answers), so the two ends never race")
	}
	for _, l := range topo.LinksOf(s.Name) {
		start := s.Tunnel.StartAction
		if libipsecTrap {
			start = "none"
			if l.A == s.Name {
				start = "start"
			}
		}
		peer := topo.Site(l.Other(s.Name))
		if peer == nil {
			problems = append(problems, fmt.Sprintf("link %s: site %q is not defined (sites: %s); add %s.yaml or remove it from tunnel.peers",
				l.Name(), l.Other(s.Name), strings.Join(topo.SiteNames(), ", "), l.Other(s.Name)))
			continue
		}
		if s.Tunnel.Auth != peer.Tunnel.Auth {
			problems = append(problems, fmt.Sprintf("link %s: %s uses tunnel.auth %s but %s uses %s; set the same tunnel.auth at both ends",
				l.Name(), s.Name, s.Tunnel.Auth, peer.Name, peer.Tunnel.Auth))
		}
		if s.Tunnel.Auth == "psk" && s.Tunnel.PSK.IsZero() {
			problems = append(problems, fmt.Sprintf("link %s: %s uses psk without tunnel.psk; name it as {env: VAR} or {file: path}", l.Name(), s.Name))
		}
		conn := Conn{
			Name: l.Name(), Link: l, Peer: peer.Name,
			LocalAddr: s.Gateway.WANAddress, RemoteAddr: peer.Gateway.WANAddress,
			LocalID: s.Gateway.ID, RemoteID: peer.Gateway.ID,
			Auth:         s.Tunnel.Auth,
			IKEProposals: s.Tunnel.IKEProposals, ESPProposals: s.Tunnel.ESPProposals,
			DPDDelay:    s.Tunnel.DPDDelay.D().String(),
			StartAction: start,
			LocalTS:     selectors(topo, s, peer),
			RemoteTS:    selectors(topo, peer, s),
			PSK:         s.Tunnel.PSK,
		}
		conn.Child = ChildName(conn)
		g.Conns = append(g.Conns, conn)
	}
	problems = append(problems, checkSelectors(g)...)
	return g, problems
}

// selectors are the subnets reachable behind `near` on its link with `far`: near's
// LAN, and when near is the hub, the LANs of the other spokes that far has no
// direct link with (the hub routes spoke-to-spoke traffic between its tunnels).
func selectors(topo *sites.Topology, near, far *sites.Site) []string {
	out := []string{near.LAN}
	if !near.IsHub() || far.IsHub() {
		return out
	}
	direct := map[string]bool{}
	for _, l := range topo.LinksOf(far.Name) {
		direct[l.Other(far.Name)] = true
	}
	for _, l := range topo.LinksOf(near.Name) {
		o := l.Other(near.Name)
		if o == far.Name || direct[o] {
			continue
		}
		if s := topo.Site(o); s != nil {
			out = append(out, s.LAN)
		}
	}
	return out
}

// checkSelectors refuses selectors that overlap: a subnet reached through two
// tunnels, or a remote subnet that overlaps the gateway's own side.
func checkSelectors(g *Gateway) []string {
	type owned struct {
		link string
		p    netip.Prefix
	}
	var problems []string
	var remote []owned
	for _, c := range g.Conns {
		var local []netip.Prefix
		for _, ts := range c.LocalTS {
			p, err := netip.ParsePrefix(ts)
			if err != nil {
				problems = append(problems, fmt.Sprintf("gateway %s link %s: local selector %q is not a CIDR", g.Site, c.Name, ts))
				continue
			}
			local = append(local, p.Masked())
		}
		for _, ts := range c.RemoteTS {
			p, err := netip.ParsePrefix(ts)
			if err != nil {
				problems = append(problems, fmt.Sprintf("gateway %s link %s: remote selector %q is not a CIDR", g.Site, c.Name, ts))
				continue
			}
			p = p.Masked()
			for _, l := range local {
				if l.Overlaps(p) {
					problems = append(problems, fmt.Sprintf("gateway %s link %s: remote selector %s overlaps local selector %s; give the sites disjoint lan subnets", g.Site, c.Name, p, l))
				}
			}
			for _, o := range remote {
				if o.p.Overlaps(p) {
					problems = append(problems, fmt.Sprintf("gateway %s: selector %s of link %s overlaps %s of link %s; a subnet must be reached through one tunnel only", g.Site, p, c.Name, o.p, o.link))
				}
			}
			remote = append(remote, owned{c.Name, p})
		}
	}
	return problems
}

// Names lists the connection names, sorted.
func (g *Gateway) Names() []string {
	out := make([]string, len(g.Conns))
	for i, c := range g.Conns {
		out[i] = c.Name
	}
	sort.Strings(out)
	return out
}

// dpdSeconds renders a Go duration as strongSwan wants it ("5s").
func dpdSeconds(d string) string {
	v, err := time.ParseDuration(d)
	if err != nil || v <= 0 {
		return "30s"
	}
	return fmt.Sprintf("%ds", int(v.Round(time.Second)/time.Second))
}
