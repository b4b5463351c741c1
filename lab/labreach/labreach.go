// Package labreach gives the sites of a lab topology the lab's way to reach them:
// the root namespace has no route into a site's LAN, so its databases and
// Alertmanager are dialled, and its gateway's commands run, inside the site's
// gateway network namespace (lab.namespace in the site config); an exposure audit
// probes from the lab's WAN namespace. Production code takes a sites.Reach and
// never looks at lab settings; this package installs it.
package labreach

import (
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/sites"
)

// Namespace is the reach of a site whose gateway runs in the named network
// namespace: dial and run commands inside it (lab.NamespaceReach).
func Namespace(ns string) sites.Reach { return lab.NamespaceReach(ns) }

// Install gives every site of topo whose config names a lab namespace its
// Namespace reach, with the lab's WAN vantage (lab.WANVantage); other sites keep
// theirs. It returns topo.
func Install(topo *sites.Topology) *sites.Topology {
	for _, s := range topo.Sites {
		if ns := s.Lab.Namespace; ns != "" {
			r := Namespace(ns)
			r.WAN = lab.WANVantage
			s.Reach = r
		}
	}
	return topo
}
