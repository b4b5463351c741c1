package labreach

import (
	"testing"

	"github.com/sitectl/sitectl/sites"
)

func TestInstallOnlyNamespacedSites(t *testing.T) {
	lab := &sites.Site{Name: "douala", Lab: sites.Lab{Namespace: "x-douala-gw"}}
	plain := &sites.Site{Name: "cloud"}
	topo := &sites.Topology{Sites: []*sites.Site{lab, plain}}
	if got := Install(topo); got != topo {
		t.Fatal("Install does not return its topology")
	}
	if lab.Reach.Dial == nil || lab.Reach.Gateway == nil || lab.Reach.GatewayName != "x-douala-gw" {
		t.Errorf("lab site reach %+v, want a dialer and a gateway shell in x-douala-gw", lab.Reach)
	}
	if plain.Reach.Dial != nil || plain.Reach.Gateway != nil || plain.Reach.GatewayName != "" {
		t.Errorf("site without lab.namespace got reach %+v, want the zero Reach", plain.Reach)
	}
}
