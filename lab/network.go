package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sitectl/sitectl/internal/netns"
)

// Interface names inside the lab's namespaces (never in the root namespace).
const (
	wanBridge = "br0"  // in the WAN namespace
	gwWANLink = "wan0" // in a gateway namespace
	gwLANBr   = "lan0" // in a gateway namespace
	nodeLink  = "eth0" // in a node namespace
)

// ensureNamespace creates ns (recording it first) unless it exists and is ours.
func (u *upper) ensureNamespace(ctx context.Context, ns string) error {
	if netns.Exists(ns) {
		if !u.owned(ns) {
			return fmt.Errorf("network namespace %s already exists and is not part of this lab's state (%s): another lab with prefix %q is running, or a crash left it behind; run `sitectl lab down --prefix %s` or pick another --prefix", ns, u.dir(), u.layout.Prefix, u.layout.Prefix)
		}
		return nil
	}
	if u.state.addNamespace(ns) {
		if err := u.save(); err != nil {
			return err
		}
	}
	if err := runIP(ctx, "netns", "add", ns); err != nil {
		return err
	}
	if err := writeResolvConf(ns); err != nil {
		return err
	}
	return ipBatch(ctx, ns, []string{"link set lo up"})
}

// resolvConf is the lab namespaces' resolver: the lab has no outside DNS, so lookups
// (dockerd asks a registry about every tag-only image before using the local one)
// are refused at once instead of timing out. `ip netns exec` bind-mounts it over
// /etc/resolv.conf for every process started in the namespace.
const resolvConf = `# sitectl lab: no outside DNS in the lab; fail at once instead of timing out.
nameserver 127.0.0.1
options timeout:1 attempts:1
`

func resolvConfPath(ns string) string { return filepath.Join("/etc/netns", ns, "resolv.conf") }

func writeResolvConf(ns string) error {
	p := resolvConfPath(ns)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(resolvConf), 0o644)
}

// removeResolvConf removes the namespace's resolv.conf if it is the lab's, and its
// /etc/netns dir when that is then empty.
func removeResolvConf(ns string) {
	p := resolvConfPath(ns)
	if b, err := os.ReadFile(p); err == nil && string(b) == resolvConf {
		_ = os.Remove(p)
	}
	_ = os.Remove(filepath.Dir(p)) // only succeeds when empty
}

func (u *upper) owned(ns string) bool {
	for _, n := range u.state.Namespaces {
		if n == ns {
			return true
		}
	}
	return false
}

func sysctl(ctx context.Context, ns string, kv ...string) error {
	args := append([]string{"netns", "exec", ns, "sysctl", "-q", "-w"}, kv...)
	return runIP(ctx, args...)
}

// buildWAN makes the WAN namespace: a bridge holding one router address per WAN
// subnet, forwarding between them. It is the only path between gateways.
func (u *upper) buildWAN(ctx context.Context) error {
	l := u.layout
	if err := u.ensureNamespace(ctx, l.WANNS); err != nil {
		return err
	}
	var lines []string
	if !linkExists(ctx, l.WANNS, wanBridge) {
		lines = append(lines, "link add "+wanBridge+" type bridge")
	}
	for _, r := range l.WANRouters {
		lines = append(lines, "addr replace "+r+" dev "+wanBridge)
	}
	lines = append(lines, "link set "+wanBridge+" up")
	if err := ipBatch(ctx, l.WANNS, lines); err != nil {
		return err
	}
	return sysctl(ctx, l.WANNS, "net.ipv4.ip_forward=1")
}

// buildSite makes a site's gateway namespace (WAN and LAN sides, forwarding on, a
// default route to the WAN only) and its node namespaces on the LAN bridge. Nothing
// routes one LAN to another: that is the tunnels' job.
func (u *upper) buildSite(ctx context.Context, s *SiteLayout) error {
	l := u.layout
	if err := u.ensureNamespace(ctx, s.GatewayNS); err != nil {
		return err
	}
	if !linkExists(ctx, s.GatewayNS, gwWANLink) {
		if err := runIP(ctx, "link", "add", s.WANLink, "netns", l.WANNS, "type", "veth", "peer", "name", gwWANLink, "netns", s.GatewayNS); err != nil {
			return fmt.Errorf("site %s: WAN link: %w", s.Name, err)
		}
	}
	if err := ipBatch(ctx, l.WANNS, []string{"link set " + s.WANLink + " master " + wanBridge + " up"}); err != nil {
		return err
	}
	gw := []string{}
	if !linkExists(ctx, s.GatewayNS, gwLANBr) {
		gw = append(gw, "link add "+gwLANBr+" type bridge")
	}
	gw = append(gw,
		"addr replace "+s.WANAddress+" dev "+gwWANLink,
		"link set "+gwWANLink+" up",
		"addr replace "+s.LANAddress+" dev "+gwLANBr,
		"link set "+gwLANBr+" up",
		"route replace default via "+s.WANRouter+" dev "+gwWANLink,
	)
	if err := ipBatch(ctx, s.GatewayNS, gw); err != nil {
		return fmt.Errorf("site %s: gateway: %w", s.Name, err)
	}
	if err := sysctl(ctx, s.GatewayNS, "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	gwAddr := prefixAddr(s.LANAddress)
	for _, n := range s.Nodes {
		if err := u.ensureNamespace(ctx, n.NS); err != nil {
			return err
		}
		if !linkExists(ctx, n.NS, nodeLink) {
			if err := runIP(ctx, "link", "add", n.GatewayLink, "netns", s.GatewayNS, "type", "veth", "peer", "name", nodeLink, "netns", n.NS); err != nil {
				return fmt.Errorf("site %s: node %s link: %w", s.Name, n.Name, err)
			}
		}
		if err := ipBatch(ctx, s.GatewayNS, []string{"link set " + n.GatewayLink + " master " + gwLANBr + " up"}); err != nil {
			return err
		}
		if err := ipBatch(ctx, n.NS, []string{
			"addr replace " + n.Address + " dev " + nodeLink,
			"link set " + nodeLink + " up",
			"route replace default via " + gwAddr + " dev " + nodeLink,
		}); err != nil {
			return fmt.Errorf("site %s: node %s: %w", s.Name, n.Name, err)
		}
	}
	return nil
}

func prefixAddr(cidr string) string {
	for i := 0; i < len(cidr); i++ {
		if cidr[i] == '/' {
			return cidr[:i]
		}
	}
	return cidr
}
