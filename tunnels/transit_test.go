package tunnels

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// hubGateway is a kernel-libipsec hub carrying a spoke's LAN to another spoke: it
// needs the transit address 10.20.0.0/32.
func hubGateway() *Gateway {
	return &Gateway{Site: "cloud", LAN: "10.30.0.0/24", IPsec: "libipsec",
		Conns: []Conn{{Name: "douala-cloud", LocalTS: []string{"10.30.0.0/24", "10.20.0.0/24"}}}}
}

// fakeGateway answers `ip -o -4 addr show` with addrs and records every command.
type fakeGateway struct {
	addrs string
	ran   [][]string
	fail  error
}

func (f *fakeGateway) run(_ context.Context, argv ...string) ([]byte, error) {
	f.ran = append(f.ran, argv)
	if f.fail != nil {
		return nil, f.fail
	}
	if slices.Equal(argv, []string{"ip", "-o", "-4", "addr", "show"}) {
		return []byte(f.addrs), nil
	}
	return nil, nil
}

// The transit step uses the site's injected gateway shell: without one the plan says
// what is needed; with one it reads the addresses there and applies with it.
func TestPlanTransitUsesInjectedGateway(t *testing.T) {
	ctx := context.Background()
	g := hubGateway()

	steps, err := planTransit(ctx, &sites.Site{Name: "cloud"}, g)
	if err != nil || len(steps) != 1 || steps[0].Action != plan.Noop || !strings.Contains(steps[0].Note, "10.20.0.0/32") {
		t.Fatalf("no gateway shell: %+v %v, want one noop naming 10.20.0.0/32", steps, err)
	}

	fake := &fakeGateway{addrs: "1: lo    inet 127.0.0.1/8 scope host lo\n"}
	site := &sites.Site{Name: "cloud", Reach: sites.Reach{Gateway: fake.run, GatewayName: "gw-ns"}}
	steps, err = planTransit(ctx, site, g)
	if err != nil || len(steps) != 1 || steps[0].Action != plan.Create {
		t.Fatalf("missing address: %+v %v, want one create", steps, err)
	}
	if want := "on " + TransitInterface + " in gw-ns: 10.20.0.0/32"; !slices.Equal(steps[0].Diff, []string{want}) {
		t.Errorf("diff %q, want %q", steps[0].Diff, want)
	}
	fake.ran = nil
	if err := steps[0].Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(fake.ran, func(a []string) bool {
		return slices.Equal(a, []string{"ip", "addr", "replace", "10.20.0.0/32", "dev", TransitInterface})
	}) {
		t.Errorf("apply ran %q, want the address replaced on %s", fake.ran, TransitInterface)
	}

	fake.addrs = "5: " + TransitInterface + "    inet 10.20.0.0/32 scope global " + TransitInterface + "\n"
	if steps, err := planTransit(ctx, site, g); err != nil || len(steps) != 0 {
		t.Errorf("address present: %+v %v, want no step", steps, err)
	}

	fake.fail = errors.New("boom")
	if _, err := planTransit(ctx, site, g); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failing gateway shell: %v, want its error", err)
	}
	if err := SetupTransit(ctx, sites.Reach{}, g); err == nil {
		t.Error("SetupTransit without a gateway shell: no error")
	}
}
