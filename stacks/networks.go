package stacks

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/sites"
)

// SiteNetworks are the site's own overlay networks (edge, app, data; docs/design.md
// decision 3), created before any stack. Stacks attach to them as external
// networks by these names. `data` is never attachable: only services of the stacks
// join it, no stray container.
func SiteNetworks(s *sites.Site) []Network {
	var out []Network
	for _, name := range slices.Sorted(maps.Keys(s.Networks)) {
		cfg := s.Networks[name]
		o := client.NetworkCreateOptions{
			Driver:     "overlay",
			Attachable: cfg.Attachable && name != "data",
			Internal:   cfg.Internal,
			Labels:     ManagedLabels(s.Name, SiteStack),
		}
		if cfg.Encrypted {
			o.Options = map[string]string{"encrypted": ""}
		}
		if p, err := netip.ParsePrefix(cfg.Subnet); err == nil {
			o.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: p}}}
		}
		n := Network{Stack: SiteStack, Name: name, Create: o}
		switch {
		case !cfg.Encrypted && s.Deploy.EncryptionException != "":
			n.Note = fmt.Sprintf("encryption off: %s (deploy.encryption_exception)", s.Deploy.EncryptionException)
		case !cfg.Encrypted:
			n.Note = "encryption off (allowed for edge only: it carries the public traffic Kong serves)"
		}
		if cfg.Attachable && name == "data" {
			n.Note = join(n.Note, "data is never attachable (attachable: true ignored)")
		}
		out = append(out, n)
	}
	return out
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
