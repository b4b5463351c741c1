// Package tunneltest helps tests bring tunnels up on a lab: Install is what
// `sitectl tunnels install` does for one gateway, the tunnels part applied.
package tunneltest

import (
	"context"
	"fmt"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
)

// Install applies the tunnels part (tunnels.Part) to g's site: plan its steps
// from the gateway's live state over vici, then apply them — the transit
// addresses when the site's Reach has a gateway shell, the credentials charon
// lacks, the connections that are missing or differ, the removal of connections
// the topology no longer has.
func Install(ctx context.Context, topo *sites.Topology, g *tunnels.Gateway) error {
	site := topo.Site(g.Site)
	if site == nil {
		return fmt.Errorf("no site %q", g.Site)
	}
	steps, err := tunnels.Part{}.Plan(ctx, topo, site)
	if err != nil {
		return err
	}
	_, err = plan.Apply(ctx, steps, nil)
	return err
}
