package audit

import (
	"context"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

// TestRunLabNeedsReach: a site whose config names a lab namespace but that has no
// reach installed (a topology loaded without labreach.Install) is refused before
// any probe, instead of being probed from this machine; with a WAN vantage in its
// reach, every probe goes through that vantage, the report names it and the
// vantage is undone.
func TestRunLabNeedsReach(t *testing.T) {
	site := &sites.Site{Name: "douala", LAN: "10.10.0.0/24",
		Gateway: sites.Gateway{WANAddress: "198.51.100.10"}, Lab: sites.Lab{Namespace: "sl-douala-gw"}}
	topo := &sites.Topology{Env: "lab", Sites: []*sites.Site{site}}
	rep, err := Run(context.Background(), topo, topo.Sites, Options{ExposureOnly: true})
	if err == nil || !strings.Contains(err.Error(), `lab.namespace is "sl-douala-gw"`) || !strings.Contains(err.Error(), "labreach.Install") {
		from := ""
		if rep != nil {
			from = rep.From
		}
		t.Fatalf("audit of a lab site without a reach: probed from %q, %v; want a refusal naming lab.namespace and labreach.Install", from, err)
	}

	var mu sync.Mutex
	dialled := map[string]bool{}
	undone, prepared := 0, []string{}
	site.Reach.WAN = func(_ context.Context, ss []*sites.Site) (sites.WANVantage, error) {
		for _, s := range ss {
			prepared = append(prepared, s.Name)
		}
		return sites.WANVantage{From: "fake WAN", Undo: func() { undone++ },
			Dial: func(_ context.Context, network, addr string) (net.Conn, error) {
				mu.Lock()
				dialled[network+" "+addr] = true
				mu.Unlock()
				return nil, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
			}}, nil
	}
	rep, err = Run(context.Background(), topo, topo.Sites, Options{ExposureOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "fake WAN" || undone != 1 || strings.Join(prepared, ",") != "douala" {
		t.Errorf("from %q, undone %d times, prepared for %v; want the vantage named, prepared for douala and undone once", rep.From, undone, prepared)
	}
	if rep.Probes == 0 || len(dialled) == 0 || !dialled["tcp 198.51.100.10:22"] {
		t.Errorf("%d probes, dialled through the vantage: %v; want every probe through it (tcp 198.51.100.10:22 among them)", rep.Probes, dialled)
	}
}
