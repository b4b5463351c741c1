// Package firewall renders each site gateway's nftables ruleset from the topology
// and applies it as the `gateway firewall` step of plan/deploy (docs/design.md decision
// 10). The ruleset is one table, `table inet sitectl`, replaced atomically by one
// `nft -f` transaction: default drop; IKE and ESP only from the peer gateways; SSH
// only from the admin networks; a site LAN and a remote site's LAN only through
// IPsec; from the WAN into the LAN only Kong's published proxy ports on the edge
// nodes; named counters on the drops. The same typed rules render the nft text and
// answer "would this packet pass?", which is how an apply that would cut sitectl's
// own management path is refused before anything is sent (see Check).
package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/tunnels"
)

// Table is the nftables table sitectl owns on every gateway (family inet). Nothing
// else on the gateway is touched.
const Table = "sitectl"

// LibipsecInterface is the TUN device kernel-libipsec moves decrypted and
// to-be-encrypted packets through (tunnel.ipsec: libipsec).
const LibipsecInterface = "ipsec0"

// Counters: every drop rule counts into one of them (`sitectl tunnels firewall`).
const (
	CounterInputDrop   = "input_drop"   // new connections to the gateway itself that no rule allows
	CounterForwardDrop = "forward_drop" // forwarded packets no rule allows (WAN → LAN probes)
	CounterLeak        = "leak"         // site LAN → remote site LAN outside the tunnel (link down or cut)
	CounterInvalid     = "invalid"      // conntrack state invalid
)

// Rule is one nftables rule. Empty fields match anything.
type Rule struct {
	// Comment names the rule: it is rendered as the nft comment and named in a
	// refusal ("rule ... would drop sitectl's path ...").
	Comment  string
	Iif, Oif string // interface names (lo, ipsec0)
	// IPsecIn matches packets that were decrypted (meta ipsec exists), IPsecOut
	// packets routed into an IPsec policy (rt ipsec exists): kernel IPsec only.
	IPsecIn, IPsecOut bool
	CtState           []string // established, related, invalid
	Saddr, Daddr      []netip.Prefix
	Proto             string // tcp, udp, esp, icmp, icmpv6
	Dport             []int
	ICMPTypes         []string
	Counter           string // named counter
	Verdict           string // accept | drop
}

// Chain is a base chain of the table.
type Chain struct {
	Name   string
	Hook   string // input | forward
	Policy string // drop
	Rules  []Rule
}

// Ruleset is one gateway's table.
type Ruleset struct {
	Site     string
	Env      string
	IPsec    string // kernel | libipsec
	Counters []string
	Chains   []Chain
	// Paths are sitectl's management paths into the site (Check).
	Paths []Path
	// Notes are what the operator should know (rendered as comments).
	Notes []string
}

// Chain returns the named chain, or nil.
func (r *Ruleset) Chain(name string) *Chain {
	for i := range r.Chains {
		if r.Chains[i].Name == name {
			return &r.Chains[i]
		}
	}
	return nil
}

// Build derives the site gateway's ruleset from the topology.
func Build(topo *sites.Topology, site *sites.Site) (*Ruleset, error) {
	g, err := tunnels.BuildSite(topo, site.Name)
	if err != nil {
		return nil, err
	}
	lan, err := netip.ParsePrefix(site.LAN)
	if err != nil {
		return nil, fmt.Errorf("firewall %s: lan %q: %w", site.Name, site.LAN, err)
	}
	lan = lan.Masked()
	admin, err := prefixes(site.Gateway.Firewall.AdminNetworks)
	if err != nil {
		return nil, fmt.Errorf("firewall %s: gateway.firewall.admin_networks (%s): %w", site.Name, topo.Origin(site.Name, "gateway.firewall.admin_networks"), err)
	}
	rs := &Ruleset{Site: site.Name, Env: topo.Env, IPsec: site.Tunnel.IPsec,
		Counters: []string{CounterInputDrop, CounterForwardDrop, CounterLeak, CounterInvalid}}
	ls, err := linksOf(site, g)
	if err != nil {
		return nil, err
	}
	paths, err := ManagementPaths(topo, site)
	if err != nil {
		return nil, err
	}
	rs.Paths = paths
	edge, ports, err := EdgePorts(topo, site)
	if err != nil {
		return nil, err
	}
	rs.Chains = []Chain{inputChain(lan, admin, ls, paths), forwardChain(site, lan, admin, ls, paths, edge, ports)}
	if len(admin) == 0 {
		rs.Notes = append(rs.Notes, "no gateway.firewall.admin_networks: SSH to the gateway is closed")
	}
	if !site.HasStack("kong") {
		rs.Notes = append(rs.Notes, "the site runs no kong stack: nothing is published from the WAN into the LAN")
	}
	return rs, nil
}

// linkTS is one link's traffic selectors.
type linkTS struct {
	name          string
	local, remote []netip.Prefix
}

// gatewayLinks are the gateway's links: their peers (the far ends) and selectors.
type gatewayLinks struct {
	peers, localTS, remoteTS []netip.Prefix
	links                    []linkTS
}

func linksOf(site *sites.Site, g *tunnels.Gateway) (gatewayLinks, error) {
	var ls gatewayLinks
	for _, c := range g.Conns {
		a, err := netip.ParseAddr(c.RemoteAddr)
		if err != nil {
			return ls, fmt.Errorf("firewall %s: peer %s gateway.wan_address %q is not an IP address", site.Name, c.Peer, c.RemoteAddr)
		}
		ls.peers = append(ls.peers, netip.PrefixFrom(a, a.BitLen()))
		l := linkTS{name: c.Name}
		if l.local, err = prefixes(c.LocalTS); err != nil {
			return ls, err
		}
		if l.remote, err = prefixes(c.RemoteTS); err != nil {
			return ls, err
		}
		ls.localTS, ls.remoteTS = append(ls.localTS, l.local...), append(ls.remoteTS, l.remote...)
		ls.links = append(ls.links, l)
	}
	ls.localTS, ls.remoteTS, ls.peers = uniq(ls.localTS), uniq(ls.remoteTS), uniq(ls.peers)
	return ls, nil
}

// inputChain is what reaches the gateway itself.
func inputChain(lan netip.Prefix, admin []netip.Prefix, ls gatewayLinks, paths []Path) Chain {
	sshPorts := []int{22}
	for _, p := range paths {
		if p.Kind == PathNetwork && p.ToGateway && p.Proto == "tcp" {
			sshPorts = append(sshPorts, p.Port)
		}
	}
	sshPorts = uniqInts(sshPorts)
	in := Chain{Name: "input", Hook: "input", Policy: "drop"}
	in.Rules = append(in.Rules,
		Rule{Comment: "loopback", Iif: "lo", Verdict: "accept"},
		Rule{Comment: "replies and related (ICMP errors)", CtState: []string{"established", "related"}, Verdict: "accept"},
		Rule{Comment: "invalid connection state", CtState: []string{"invalid"}, Counter: CounterInvalid, Verdict: "drop"},
	)
	if len(ls.peers) > 0 {
		in.Rules = append(in.Rules,
			Rule{Comment: "IKE and NAT-T from the peer gateways", Saddr: ls.peers, Proto: "udp", Dport: []int{500, 4500}, Verdict: "accept"},
			Rule{Comment: "ESP from the peer gateways", Saddr: ls.peers, Proto: "esp", Verdict: "accept"})
	}
	if len(admin) > 0 {
		in.Rules = append(in.Rules, Rule{Comment: "SSH from the admin networks", Saddr: admin, Proto: "tcp", Dport: sshPorts, Verdict: "accept"})
	}
	pingFrom := uniq(append(append([]netip.Prefix{lan}, ls.remoteTS...), admin...))
	in.Rules = append(in.Rules,
		Rule{Comment: "ping from the site, the remote sites and the admin networks", Saddr: pingFrom, Proto: "icmp", ICMPTypes: []string{"echo-request"}, Verdict: "accept"},
		Rule{Comment: "IPv6 neighbour discovery", Proto: "icmpv6", ICMPTypes: []string{"nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert"}, Verdict: "accept"},
		Rule{Comment: "default: drop", Counter: CounterInputDrop, Verdict: "drop"},
	)
	return in
}

// forwardChain is what the gateway routes: the links, the LAN, Kong's ports on the
// edge nodes and the management paths into the LAN.
func forwardChain(site *sites.Site, lan netip.Prefix, admin []netip.Prefix, ls gatewayLinks, paths []Path, edge []netip.Prefix, ports []int) Chain {
	fw := Chain{Name: "forward", Hook: "forward", Policy: "drop"}
	fw.Rules = append(fw.Rules,
		Rule{Comment: "replies and related (ICMP errors)", CtState: []string{"established", "related"}, Verdict: "accept"},
		Rule{Comment: "invalid connection state", CtState: []string{"invalid"}, Counter: CounterInvalid, Verdict: "drop"},
	)
	for _, l := range ls.links {
		inR := Rule{Comment: "link " + l.name + ": from the remote LAN through IPsec", Saddr: l.remote, Daddr: l.local, Verdict: "accept"}
		outR := Rule{Comment: "link " + l.name + ": to the remote LAN through IPsec", Saddr: l.local, Daddr: l.remote, Verdict: "accept"}
		if site.Tunnel.IPsec == "libipsec" {
			inR.Iif, outR.Oif = LibipsecInterface, LibipsecInterface
		} else {
			inR.IPsecIn, outR.IPsecOut = true, true
		}
		fw.Rules = append(fw.Rules, inR, outR)
	}
	if len(ls.remoteTS) > 0 {
		fw.Rules = append(fw.Rules, Rule{Comment: "site LAN to a remote site LAN outside the tunnel (link down or cut)",
			Saddr: ls.localTS, Daddr: ls.remoteTS, Counter: CounterLeak, Verdict: "drop"})
	}
	fw.Rules = append(fw.Rules, Rule{Comment: "within the site LAN (bridged through the gateway when br_netfilter is loaded)",
		Saddr: []netip.Prefix{lan}, Daddr: []netip.Prefix{lan}, Verdict: "accept"})
	if len(edge) > 0 && len(ports) > 0 {
		fw.Rules = append(fw.Rules, Rule{Comment: "Kong's published proxy ports on the edge nodes", Daddr: edge, Proto: "tcp", Dport: ports, Verdict: "accept"})
	}
	for _, p := range paths {
		if p.Kind != PathNetwork || p.ToGateway || !lan.Contains(p.Addr) || len(admin) == 0 {
			continue
		}
		fw.Rules = append(fw.Rules, Rule{Comment: "management from the admin networks: " + p.What, Saddr: admin,
			Daddr: []netip.Prefix{netip.PrefixFrom(p.Addr, p.Addr.BitLen())}, Proto: p.Proto, Dport: []int{p.Port}, Verdict: "accept"})
	}
	fw.Rules = append(fw.Rules,
		Rule{Comment: "site LAN out to the WAN (image pulls, updates)", Saddr: []netip.Prefix{lan}, Verdict: "accept"},
		Rule{Comment: "default: drop", Counter: CounterForwardDrop, Verdict: "drop"},
	)
	return fw
}

// EdgePorts returns the addresses of the nodes that run Kong and its published
// proxy ports (values.kong.http_port, https_port): all the WAN may reach in the LAN.
func EdgePorts(topo *sites.Topology, site *sites.Site) ([]netip.Prefix, []int, error) {
	if !site.HasStack("kong") {
		return nil, nil, nil
	}
	st, err := kong.ReadSettings(topo, site)
	if err != nil {
		return nil, nil, fmt.Errorf("firewall %s: %w", site.Name, err)
	}
	nodes, err := kong.Nodes(topo, site)
	if err != nil {
		return nil, nil, fmt.Errorf("firewall %s: edge nodes: %w", site.Name, err)
	}
	var out []netip.Prefix
	for _, n := range nodes {
		a, err := netip.ParseAddr(n.Address)
		if err != nil {
			return nil, nil, fmt.Errorf("firewall %s: node %s address %q is not an IP address", site.Name, n.Name, n.Address)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return uniq(out), uniqInts([]int{st.HTTPPort, st.HTTPSPort}), nil
}

// Render returns the ruleset as an nft script that replaces the table atomically:
// `nft -f` runs the whole file as one transaction (declare, delete, add), so a
// gateway has either the previous table or this one, and applying it twice leaves
// the same table.
func (r *Ruleset) Render() string {
	var b strings.Builder
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("\t", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	w(0, "#!/usr/sbin/nft -f")
	w(0, "# Gateway firewall of site %s (environment %s, IPsec %s).", r.Site, r.Env, r.IPsec)
	w(0, "# Generated by sitectl from the site configuration; do not edit (sitectl tunnels render).")
	w(0, "# Applied as one transaction: the table is declared, deleted and added again.")
	for _, n := range r.Notes {
		w(0, "# note: %s", n)
	}
	w(0, "table inet %s", Table)
	w(0, "delete table inet %s", Table)
	w(0, "")
	w(0, "table inet %s {", Table)
	for _, c := range r.Counters {
		w(1, "counter %s {", c)
		w(1, "}")
	}
	for _, c := range r.Chains {
		b.WriteByte('\n')
		w(1, "chain %s {", c.Name)
		w(2, "type filter hook %s priority filter; policy %s;", c.Hook, c.Policy)
		for _, rule := range c.Rules {
			w(2, "%s", rule.nft())
		}
		w(1, "}")
	}
	w(0, "}")
	return b.String()
}

// nft renders one rule.
func (r Rule) nft() string {
	var p []string
	if r.Iif != "" {
		p = append(p, "iifname "+strconv.Quote(r.Iif))
	}
	if r.Oif != "" {
		p = append(p, "oifname "+strconv.Quote(r.Oif))
	}
	if r.IPsecIn {
		p = append(p, "meta ipsec exists")
	}
	if r.IPsecOut {
		p = append(p, "rt ipsec exists")
	}
	if len(r.CtState) > 0 {
		p = append(p, "ct state "+strings.Join(r.CtState, ","))
	}
	if len(r.Saddr) > 0 {
		p = append(p, "ip saddr "+set(r.Saddr))
	}
	if len(r.Daddr) > 0 {
		p = append(p, "ip daddr "+set(r.Daddr))
	}
	switch r.Proto {
	case "":
	case "esp":
		p = append(p, "meta l4proto esp")
	case "icmp", "icmpv6":
		p = append(p, r.Proto+" type "+set(r.ICMPTypes))
	default:
		if len(r.Dport) > 0 {
			p = append(p, r.Proto+" dport "+set(r.Dport))
		} else {
			p = append(p, "meta l4proto "+r.Proto)
		}
	}
	if r.Counter != "" {
		p = append(p, "counter name "+strconv.Quote(r.Counter))
	}
	p = append(p, r.Verdict)
	if r.Comment != "" {
		p = append(p, "comment "+strconv.Quote(r.Comment))
	}
	return strings.Join(p, " ")
}

// set renders one element bare and several as an anonymous set.
func set[T any](v []T) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
		if p, ok := any(x).(netip.Prefix); ok && p.IsSingleIP() {
			s[i] = p.Addr().String()
		}
	}
	if len(s) == 1 {
		return s[0]
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

func prefixes(in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a network in CIDR form", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func uniq(in []netip.Prefix) []netip.Prefix {
	out := slices.Clone(in)
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return slices.Compact(out)
}

func uniqInts(in []int) []int {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}
