package tunnels

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// TransitInterface is the interface that holds a libipsec gateway's transit addresses.
const TransitInterface = "sitectl-tr"

// TransitAddresses are the addresses a gateway running kernel-libipsec must own.
// kernel-libipsec installs a route for every outbound policy and needs a local
// address inside the policy's local selector; the hub has none inside the other
// spokes' LANs it carries between its tunnels, so the CHILD_SA would fail with
// TS_UNACCEPTABLE. sitectl gives the hub each such LAN's network address (never a
// host's address) on an interface of its own. Kernel IPsec (kernel-netlink) needs
// none of this: the result is empty unless the gateway uses libipsec.
func TransitAddresses(g *Gateway) []string {
	if g.IPsec != "libipsec" {
		return nil
	}
	own, err := netip.ParsePrefix(g.LAN)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range g.Conns {
		for _, ts := range c.LocalTS {
			p, err := netip.ParsePrefix(ts)
			if err != nil || p.Masked() == own.Masked() {
				continue
			}
			a := p.Masked().Addr().String() + "/32"
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// SetupTransit gives a libipsec gateway its transit addresses (see
// TransitAddresses), idempotently, with the commands r runs on the gateway host.
// The interface is a veth pair because the lab kernel has no dummy interfaces.
// Nothing is done when the gateway needs no transit address.
func SetupTransit(ctx context.Context, r sites.Reach, g *Gateway) error {
	addrs := TransitAddresses(g)
	if len(addrs) == 0 {
		return nil
	}
	run := r.Gateway
	if run == nil {
		return fmt.Errorf("gateway %s: sitectl has no shell on the gateway to give it %s (set them by hand)", g.Site, strings.Join(addrs, ", "))
	}
	if _, err := run(ctx, "ip", "link", "show", TransitInterface); err != nil {
		if _, err := run(ctx, "ip", "link", "add", TransitInterface, "type", "veth", "peer", "name", TransitInterface+"-p"); err != nil {
			return fmt.Errorf("gateway %s: transit interface: %w", g.Site, err)
		}
	}
	for _, a := range addrs {
		if _, err := run(ctx, "ip", "addr", "replace", a, "dev", TransitInterface); err != nil {
			return fmt.Errorf("gateway %s: transit address %s: %w", g.Site, a, err)
		}
	}
	for _, dev := range []string{TransitInterface, TransitInterface + "-p"} {
		if _, err := run(ctx, "ip", "link", "set", dev, "up"); err != nil {
			return fmt.Errorf("gateway %s: transit interface up: %w", g.Site, err)
		}
	}
	return nil
}

func transitComment(g *Gateway) string {
	a := TransitAddresses(g)
	if len(a) == 0 {
		return ""
	}
	return fmt.Sprintf("# kernel-libipsec hub: this gateway must own %s on %s (tunnels.SetupTransit),\n# or the CHILD_SAs that carry other spokes' LANs fail with TS_UNACCEPTABLE.\n",
		strings.Join(a, ", "), TransitInterface)
}

// missingTransit lists the transit addresses the gateway lacks, read with run.
func missingTransit(ctx context.Context, run sites.GatewayFunc, g *Gateway) ([]string, error) {
	want := TransitAddresses(g)
	if len(want) == 0 {
		return nil, nil
	}
	out, err := run(ctx, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		return nil, fmt.Errorf("gateway %s: %w", g.Site, err)
	}
	var missing []string
	for _, a := range want {
		if !strings.Contains(string(out), " inet "+a+" ") && !strings.Contains(string(out), " inet "+strings.TrimSuffix(a, "/32")+" ") {
			missing = append(missing, a)
		}
	}
	return missing, nil
}
