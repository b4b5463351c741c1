// Package labreach gives the sites of a lab topology the lab's way to reach them:
// the root namespace has no route into a site's LAN, so its databases and
// Alertmanager are dialled, and its gateway's commands run, inside the site's
// gateway network namespace (lab.namespace in the site config). Production code
// takes a sites.Reach and never looks at lab settings; this package installs it.
package labreach

import (
	"context"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/sites"
)

// Namespace is the reach of a site whose gateway runs in the named network
// namespace: dial and run commands inside it.
func Namespace(ns string) sites.Reach {
	return sites.Reach{
		Dial: netns.Dialer(ns),
		Gateway: func(ctx context.Context, argv ...string) ([]byte, error) {
			return netns.Run(ctx, ns, argv...)
		},
		GatewayName: ns,
	}
}

// Install gives every site of topo whose config names a lab namespace its
// Namespace reach; other sites keep theirs. It returns topo.
func Install(topo *sites.Topology) *sites.Topology {
	for _, s := range topo.Sites {
		if ns := s.Lab.Namespace; ns != "" {
			s.Reach = Namespace(ns)
		}
	}
	return topo
}
