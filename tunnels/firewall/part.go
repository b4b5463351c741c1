package firewall

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
)

// ComponentGateway is the component of the step this part plans.
const ComponentGateway plan.Component = "gateway"

// Part is the `gateway firewall` step of a site's deploy path (plan.Part): it reads
// the gateway's table inet sitectl, compares it with the rendered ruleset (both as
// the gateway's nft lists them) and, when they differ, applies the ruleset with an
// automatic rollback. A ruleset that would cut sitectl's own management path is
// refused while planning, before anything is applied.
type Part struct{}

// Name is the part's name in plans.
func (Part) Name() string { return "firewall" }

// Plan reads the live ruleset and returns the step; it changes nothing.
func (Part) Plan(ctx context.Context, topo *sites.Topology, site *sites.Site) ([]plan.Step, error) {
	if !site.Gateway.Firewall.Enabled {
		return nil, nil
	}
	r, err := RunnerFor(site)
	if err != nil {
		return nil, err
	}
	rs, err := Build(topo, site)
	if err != nil {
		return nil, err
	}
	unchecked, err := CheckSite(rs, site)
	if err != nil {
		return nil, err
	}
	rendered := rs.Render()
	live, want, err := r.Read(ctx, rendered)
	if err != nil {
		return nil, err
	}
	st := plan.Step{Site: site.Name, Component: ComponentGateway, Name: "firewall", Action: plan.Noop}
	if live == want {
		return []plan.Step{st}, nil
	}
	timeout := site.Gateway.Firewall.ConfirmTimeout.D()
	notes := []string{fmt.Sprintf("table inet %s, applied in one nft transaction and rolled back unless sitectl reaches the gateway through it within %s (review: sitectl tunnels render --site %s)", Table, timeout, site.Name)}
	if len(unchecked) > 0 {
		notes = append(notes, "not checked against the ruleset (named by host name or docker context): "+strings.Join(unchecked, ", "))
	}
	if live == "" {
		st.Action, st.Diff = plan.Create, Summary(rs)
	} else {
		st.Action, st.Diff = plan.Update, Diff(live, want)
	}
	st.Note = plan.JoinNotes(notes...)
	st.Apply = func(ctx context.Context) error {
		// The check again, right before the change: the configuration is the same
		// but sitectl's own address may not be.
		if _, err := CheckSite(rs, site); err != nil {
			return err
		}
		_, err := r.Apply(ctx, rendered, timeout, Confirm(topo, site, rs))
		return err
	}
	return []plan.Step{st}, nil
}

// Summary describes a ruleset in a few lines (for a plan that creates it).
func Summary(rs *Ruleset) []string {
	var out []string
	for _, c := range rs.Chains {
		out = append(out, fmt.Sprintf("chain %s: %d rules, policy %s", c.Name, len(c.Rules), c.Policy))
		for _, r := range c.Rules {
			if r.Verdict == "accept" && len(r.CtState) == 0 && r.Iif != "lo" {
				out = append(out, "  accept: "+r.Comment)
			}
		}
	}
	return out
}

// CheckSite runs Check for the site: from gateway.firewall.management_from, or
// else from sitectl's own addresses toward the gateway and the site.
func CheckSite(rs *Ruleset, site *sites.Site) ([]string, error) {
	lan, err := netip.ParsePrefix(site.LAN)
	if err != nil {
		return nil, err
	}
	gw, err := netip.ParseAddr(site.Gateway.LANAddress)
	if err != nil {
		return nil, fmt.Errorf("firewall %s: gateway.lan_address %q: %w", site.Name, site.Gateway.LANAddress, err)
	}
	var src []netip.Addr
	for _, s := range site.Gateway.Firewall.ManagementFrom {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("firewall %s: gateway.firewall.management_from %q: %w", site.Name, s, err)
		}
		src = append(src, p.Masked().Addr())
	}
	if len(src) == 0 {
		src = ownAddresses(rs.Paths)
	}
	return rs.Check(lan.Masked(), gw, src)
}

// ownAddresses are the source addresses this machine would use toward the network
// paths (a UDP connect sends nothing; it only picks the route).
func ownAddresses(paths []Path) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, p := range paths {
		if p.Kind != PathNetwork {
			continue
		}
		c, err := net.Dial("udp", net.JoinHostPort(p.Addr.String(), strconv.Itoa(p.Port)))
		if err != nil {
			continue
		}
		if a, ok := netip.AddrFromSlice(c.LocalAddr().(*net.UDPAddr).IP); ok && !seen[a.Unmap()] {
			seen[a.Unmap()] = true
			out = append(out, a.Unmap())
		}
		_ = c.Close() // a UDP socket that sent nothing
	}
	return out
}

// ProbeInterval is how often Confirm retries while the new ruleset settles.
var ProbeInterval = 200 * time.Millisecond

// Confirm returns the check an apply waits for: sitectl opens a new vici session to
// the gateway (a new SSH connection where vici is reached over SSH) and new TCP
// connections along every management path, retrying until ctx ends. A refused
// connection passes (the path is open, the service is down); only silence fails.
func Confirm(topo *sites.Topology, site *sites.Site, rs *Ruleset) func(context.Context) error {
	return func(ctx context.Context) error {
		g, err := tunnels.BuildSite(topo, site.Name)
		if err != nil {
			return err
		}
		for {
			err := confirmOnce(ctx, g, site, rs.Paths)
			if err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(ProbeInterval):
			}
		}
	}
}

func confirmOnce(ctx context.Context, g *tunnels.Gateway, site *sites.Site, paths []Path) error {
	if len(g.Conns) > 0 || site.Gateway.Vici != "" {
		c, err := tunnels.Dial(ctx, g)
		if err != nil {
			return err
		}
		_, err = c.ConnNames(ctx)
		c.Close()
		if err != nil {
			return err
		}
	}
	for _, p := range paths {
		// This machine's own network; a path dialled from the gateway host goes
		// with the site's Reach (ManagementPaths).
		dial := sites.DialFunc(netns.Dialer(""))
		switch p.Kind {
		case PathNetwork:
		case PathFromGateway:
			dial = site.Reach.Dial
		default:
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := dial(dctx, "tcp", net.JoinHostPort(p.Addr.String(), strconv.Itoa(p.Port)))
		cancel()
		if err == nil {
			_ = c.Close() // only the connection's success was wanted
			continue
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}
