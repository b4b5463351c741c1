package labreach

import (
	"context"
	"strings"
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
	if lab.Reach.Dial == nil || lab.Reach.Gateway == nil || lab.Reach.GatewayName != "x-douala-gw" ||
		lab.Reach.GatewayCommand == nil || lab.Reach.GatewayWhere != "namespace x-douala-gw" || lab.Reach.WAN == nil {
		t.Errorf("lab site reach %+v, want a dialer, a gateway shell and command in x-douala-gw, and the lab's WAN vantage", lab.Reach)
	}
	if args := lab.Reach.GatewayCommand(context.Background(), "nft", "list", "ruleset").Args; strings.Join(args, " ") != "ip netns exec x-douala-gw nft list ruleset" {
		t.Errorf("gateway command %q, want it run through ip netns exec x-douala-gw", args)
	}
	if plain.Reach.Dial != nil || plain.Reach.Gateway != nil || plain.Reach.GatewayName != "" || plain.Reach.GatewayCommand != nil || plain.Reach.WAN != nil {
		t.Errorf("site without lab.namespace got reach %+v, want the zero Reach", plain.Reach)
	}
}

// TestWANVantageNeedsTheLab: the lab's WAN vantage reads the lab state first; with
// no lab state it fails naming the state directory, before running anything.
func TestWANVantageNeedsTheLab(t *testing.T) {
	dir := t.TempDir()
	_, err := Install(&sites.Topology{Sites: []*sites.Site{{Name: "douala", Lab: sites.Lab{Namespace: "x-douala-gw", StateDir: dir}}}}).
		Sites[0].Reach.WAN(context.Background(), []*sites.Site{{Name: "douala", Lab: sites.Lab{StateDir: dir}}})
	if err == nil || !strings.Contains(err.Error(), "lab state in "+dir) || !strings.Contains(err.Error(), "is the lab up?") {
		t.Errorf("WAN vantage without a lab: %v; want an error naming the lab state directory", err)
	}
}
