package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/sites"
)

// NamespaceReach is the reach of a site whose gateway runs in the network
// namespace ns: its LAN is dialled, and its gateway's commands run, inside ns.
// lab/labreach installs it on every site of a lab topology.
func NamespaceReach(ns string) sites.Reach {
	return sites.Reach{
		Dial: netns.Dialer(ns),
		Gateway: func(ctx context.Context, argv ...string) ([]byte, error) {
			return netns.Run(ctx, ns, argv...)
		},
		GatewayName: ns,
		GatewayCommand: func(ctx context.Context, argv ...string) *exec.Cmd {
			return netns.Command(ctx, ns, argv...)
		},
		GatewayWhere: "namespace " + ns,
	}
}

// WANVantage is the lab's WAN vantage (sites.WANFunc): the lab's WAN namespace
// (read from the lab state of the first site's lab.state_dir), after adding
// there a route to each site's LAN via the site's gateway — what any WAN
// neighbour can do. Undo removes the routes it added (not ones that were there).
func WANVantage(ctx context.Context, selected []*sites.Site) (sites.WANVantage, error) {
	if len(selected) == 0 {
		return sites.WANVantage{}, fmt.Errorf("lab WAN vantage: no site")
	}
	st, err := ReadState(selected[0].Lab.StateDir)
	if err != nil {
		return sites.WANVantage{}, fmt.Errorf("audit: lab state in %s: %w (is the lab up? `sitectl lab status`)", selected[0].Lab.StateDir, err)
	}
	wan := st.Layout.WANNS
	var added []string
	undo := func() {
		for _, lan := range added {
			_, _ = netns.Run(context.Background(), wan, "ip", "route", "del", lan)
		}
	}
	for _, s := range selected {
		out, err := netns.Run(ctx, wan, "ip", "route", "add", s.LAN, "via", s.Gateway.WANAddress)
		switch {
		case err == nil:
			added = append(added, s.LAN)
		case strings.Contains(string(out), "File exists"):
		default:
			undo()
			return sites.WANVantage{}, fmt.Errorf("audit %s: route to %s via %s in %s: %w", s.Name, s.LAN, s.Gateway.WANAddress, wan, err)
		}
	}
	return sites.WANVantage{
		From: "lab WAN namespace " + wan + " (with a route to each site's LAN via its gateway)",
		Dial: netns.Dialer(wan),
		Undo: undo,
	}, nil
}
