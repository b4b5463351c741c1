// Package lab builds the three sites of a sitectl topology on one Linux machine: a WAN
// bridge in its own network namespace, per site a gateway namespace running strongSwan
// (charon-systemd with userspace IPsec) and node namespaces each running their own
// dockerd, joined into the site's swarm. It records everything it makes so that Down
// removes exactly that, and writes the `lab` environment overlay that points sitectl at
// the lab.
package lab

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/sitectl/sitectl/sites"
)

// Defaults.
const (
	DefaultPrefix   = "sl"
	DefaultStateDir = "/var/lib/sitectl/lab"
	// EnvName is the environment overlay lab up writes.
	EnvName = "lab"
)

// Layout is what a lab is made of, computed from the site configuration alone (no
// side effects): namespace and interface names, addresses and paths.
type Layout struct {
	Prefix   string `json:"prefix"`
	StateDir string `json:"state_dir"`
	// WANNS is the namespace holding the WAN bridge (and the WAN routers' addresses).
	WANNS string `json:"wan_namespace"`
	// WANRouters are the addresses (CIDR) the WAN namespace holds on its bridge, one per
	// WAN subnet the gateways use; gateways route via them.
	WANRouters []string     `json:"wan_routers"`
	Sites      []SiteLayout `json:"sites"`
}

// SiteLayout is one site of the lab.
type SiteLayout struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// GatewayNS is the site's gateway namespace; its LAN is reachable from there.
	GatewayNS string `json:"gateway_namespace"`
	// WANLink is the gateway's veth end in the WAN namespace.
	WANLink    string `json:"wan_link"`
	WANAddress string `json:"wan_address"` // CIDR
	WANRouter  string `json:"wan_router"`  // address
	LAN        string `json:"lan"`
	LANAddress string `json:"lan_address"` // CIDR
	// Vici is charon's vici socket path.
	Vici        string       `json:"vici"`
	CharonConf  string       `json:"charon_conf"`
	PKIDir      string       `json:"pki_dir"`
	SecretsDir  string       `json:"secrets_dir"`
	Nodes       []NodeLayout `json:"nodes"`
	SwarmPools  []string     `json:"swarm_pools"`
	SwarmSubnet int          `json:"swarm_subnet_size"`
}

// NodeLayout is one node (one dockerd) of a site.
type NodeLayout struct {
	Name    string            `json:"name"`
	Role    string            `json:"role"`
	NS      string            `json:"namespace"`
	Address string            `json:"address"` // CIDR on the site LAN
	Labels  map[string]string `json:"labels,omitempty"`
	// GatewayLink is the node's veth end in the gateway namespace (on the LAN bridge).
	GatewayLink string `json:"gateway_link"`
	Dir         string `json:"dir"`
	Socket      string `json:"socket"`
	// Bip and Pool keep each engine's local bridges apart from the others'.
	Bip          string `json:"bip"`
	Pool         string `json:"address_pool"`
	CgroupParent string `json:"cgroup_parent"`
}

// Engine is the node's engine endpoint (unix://...).
func (n NodeLayout) Engine() string { return "unix://" + n.Socket }

// Namespaces lists every namespace of the layout, WAN first.
func (l *Layout) Namespaces() []string {
	out := []string{l.WANNS}
	for _, s := range l.Sites {
		out = append(out, s.GatewayNS)
		for _, n := range s.Nodes {
			out = append(out, n.NS)
		}
	}
	return out
}

// Site returns the named site's layout, or nil.
func (l *Layout) Site(name string) *SiteLayout {
	for i := range l.Sites {
		if l.Sites[i].Name == name {
			return &l.Sites[i]
		}
	}
	return nil
}

// Node finds a node by name across sites.
func (l *Layout) Node(name string) (*SiteLayout, *NodeLayout) {
	for i := range l.Sites {
		for j := range l.Sites[i].Nodes {
			if l.Sites[i].Nodes[j].Name == name {
				return &l.Sites[i], &l.Sites[i].Nodes[j]
			}
		}
	}
	return nil, nil
}

// NewLayout computes the lab for the given sites of a topology (all when names is
// empty). Addresses come from the site files (LAN, node and gateway addresses); the
// lab adds only what a real site has outside sitectl's view: the WAN routers and the
// engines' local bridge ranges.
func NewLayout(topo *sites.Topology, names []string, prefix, stateDir string) (*Layout, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("lab prefix %q: use 1-6 lower case letters or digits, starting with a letter", prefix)
	}
	selected, err := topo.Select(names...)
	if err != nil {
		return nil, err
	}
	l := &Layout{Prefix: prefix, StateDir: stateDir, WANNS: prefix + "-wan"}
	routers := map[netip.Prefix]netip.Addr{}
	taken := map[netip.Addr]bool{}
	nodeIndex := 0
	for si, s := range selected {
		where := func(key string) string { return topo.Origin(s.Name, key) }
		if len(s.Nodes) == 0 {
			return nil, fmt.Errorf("site %s has no nodes (%s: nodes); the lab makes one namespace per node", s.Name, where("nodes"))
		}
		lan, err := netip.ParsePrefix(s.LAN)
		if err != nil {
			return nil, fmt.Errorf("site %s: lan %q (%s): %w", s.Name, s.LAN, where("lan"), err)
		}
		gwLAN, err := netip.ParseAddr(s.Gateway.LANAddress)
		if err != nil || !lan.Contains(gwLAN) {
			return nil, fmt.Errorf("site %s: gateway.lan_address %q (%s) must be an address inside lan %s", s.Name, s.Gateway.LANAddress, where("gateway.lan_address"), s.LAN)
		}
		wan, err := netip.ParseAddr(s.Gateway.WANAddress)
		if err != nil || !wan.Is4() {
			return nil, fmt.Errorf("site %s: gateway.wan_address %q (%s) must be an IPv4 address", s.Name, s.Gateway.WANAddress, where("gateway.wan_address"))
		}
		if taken[wan] {
			return nil, fmt.Errorf("site %s: gateway.wan_address %s (%s) is used by another site", s.Name, wan, where("gateway.wan_address"))
		}
		taken[wan] = true
		wanNet := netip.PrefixFrom(wan, 24).Masked()
		dir := filepath.Join(stateDir, "sites", s.Name)
		sl := SiteLayout{
			Name:        s.Name,
			Dir:         dir,
			GatewayNS:   fmt.Sprintf("%s-%s-gw", prefix, s.Name),
			WANLink:     fmt.Sprintf("gw%d", si),
			WANAddress:  netip.PrefixFrom(wan, 24).String(),
			LAN:         lan.String(),
			LANAddress:  netip.PrefixFrom(gwLAN, lan.Bits()).String(),
			Vici:        filepath.Join(dir, "charon.vici"),
			CharonConf:  filepath.Join(dir, "strongswan.conf"),
			PKIDir:      filepath.Join(stateDir, "pki"),
			SecretsDir:  filepath.Join(stateDir, "secrets"),
			SwarmPools:  s.Swarm.DefaultAddrPool,
			SwarmSubnet: s.Swarm.SubnetSize,
		}
		if _, ok := routers[wanNet]; !ok {
			routers[wanNet] = netip.Addr{}
		}
		for ni, n := range s.Nodes {
			addr, err := netip.ParseAddr(n.Address)
			if err != nil || !lan.Contains(addr) {
				return nil, fmt.Errorf("site %s: node %s address %q (%s) must be an address inside lan %s", s.Name, n.Name, n.Address, where("nodes"), s.LAN)
			}
			if addr == gwLAN {
				return nil, fmt.Errorf("site %s: node %s has the gateway's LAN address %s (%s)", s.Name, n.Name, addr, where("nodes"))
			}
			if nodeIndex > 9 {
				return nil, fmt.Errorf("the lab runs at most 10 nodes (engine bridge ranges 172.16-31.x); site %s has more", s.Name)
			}
			labels := map[string]string{"site": s.Name}
			for k, v := range n.Labels {
				labels[k] = v
			}
			ndir := filepath.Join(stateDir, "nodes", n.Name)
			sl.Nodes = append(sl.Nodes, NodeLayout{
				Name:         n.Name,
				Role:         n.Role,
				NS:           prefix + "-" + n.Name,
				Address:      netip.PrefixFrom(addr, lan.Bits()).String(),
				Labels:       labels,
				GatewayLink:  fmt.Sprintf("n%d", ni),
				Dir:          ndir,
				Socket:       filepath.Join(ndir, "docker.sock"),
				Bip:          fmt.Sprintf("172.16.%d.1/24", 10+nodeIndex),
				Pool:         fmt.Sprintf("172.%d.0.0/16", 18+nodeIndex),
				CgroupParent: prefix + "-" + n.Name,
			})
			nodeIndex++
		}
		l.Sites = append(l.Sites, sl)
	}
	l.assignWANRouters(routers, taken)
	return l, nil
}

// assignWANRouters gives each WAN subnet in routers one router address (.1, or .254
// when a gateway holds .1: taken) and each site its router.
func (l *Layout) assignWANRouters(routers map[netip.Prefix]netip.Addr, taken map[netip.Addr]bool) {
	var nets []netip.Prefix
	for p := range routers {
		nets = append(nets, p)
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].Addr().Less(nets[j].Addr()) })
	for _, p := range nets {
		a := p.Addr().Next()
		if taken[a] {
			b := p.Addr().As4()
			b[3] = 254
			a = netip.AddrFrom4(b)
		}
		routers[p] = a
		l.WANRouters = append(l.WANRouters, netip.PrefixFrom(a, 24).String())
	}
	for i := range l.Sites {
		w := netip.MustParsePrefix(l.Sites[i].WANAddress)
		l.Sites[i].WANRouter = routers[w.Masked()].String()
	}
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)
