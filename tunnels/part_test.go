package tunnels

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

var _ plan.Part = Part{}

// planAll plans every site and returns the changing steps ("site action component name").
func planAll(t *testing.T, topo *sites.Topology, apply bool) []string {
	t.Helper()
	ctx := context.Background()
	var changes []string
	for _, s := range topo.Sites {
		steps, err := Part{}.Plan(ctx, topo, s)
		if err != nil {
			t.Fatalf("plan %s: %v", s.Name, err)
		}
		for _, st := range steps {
			if st.Action == plan.Noop {
				continue
			}
			changes = append(changes, s.Name+" "+st.String()+" "+strings.Join(st.Diff, "; "))
			if apply {
				if err := st.Apply(ctx); err != nil {
					t.Fatalf("apply %s %s: %v", s.Name, st, err)
				}
			}
		}
	}
	return changes
}

func TestLabPlan(t *testing.T) {
	l := startTNLab(t)
	ctx := context.Background()

	first := planAll(t, l.topo, true)
	// One conn per link end, credentials per gateway, the hub's transit addresses.
	if len(first) != 2*len(l.topo.Links)+3+1 || !strings.Contains(strings.Join(first, "\n"), "cloud + tunnel transit addresses on sitectl-tr in tn-gw-cloud: 10.10.0.0/32, 10.20.0.0/32") {
		t.Fatalf("first plan: %d changes, want %d:\n%s", len(first), 2*len(l.topo.Links)+4, strings.Join(first, "\n"))
	}
	if again := planAll(t, l.topo, false); len(again) != 0 {
		t.Fatalf("second plan after apply is not empty:\n%s", strings.Join(again, "\n"))
	}
	for _, link := range l.topo.Links {
		if err := WaitUp(ctx, l.topo, link.Name(), 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// A hub without its transit addresses refuses the CHILD_SAs (IKE_SA up, no child):
	// the plan restores the addresses and initiates the children.
	if _, err := netns.Run(ctx, "tn-gw-cloud", "ip", "link", "del", TransitInterface); err != nil {
		t.Fatal(err)
	}
	for _, link := range l.topo.Links {
		if err := Cut(ctx, l.topo, link.Name()); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range mustBuild(t, l.topo) {
		c, err := Dial(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		for _, conn := range g.Conns {
			if err := c.LoadConn(ctx, conn); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	if err := WaitUp(ctx, l.topo, "douala-cloud", 3*time.Second); err == nil {
		t.Fatal("douala-cloud came up although the hub has no transit addresses")
	}
	repair := strings.Join(planAll(t, l.topo, true), "\n")
	for _, want := range []string{"cloud + tunnel transit addresses", "without CHILD_SA"} {
		if !strings.Contains(repair, want) {
			t.Errorf("repair plan lacks %q:\n%s", want, repair)
		}
	}
	for _, link := range l.topo.Links {
		if err := WaitUp(ctx, l.topo, link.Name(), 20*time.Second); err != nil {
			t.Fatalf("after the repair plan: %v", err)
		}
	}
	if again := planAll(t, l.topo, false); len(again) != 0 {
		t.Fatalf("plan after repair is not empty:\n%s", strings.Join(again, "\n"))
	}

	// Add a direct douala–yaounde link: the spokes' hub selectors shrink (reload),
	// the new link is created at both ends.
	direct := l.reload(t, "douala:tunnel.peers=cloud,yaounde")
	changes := planAll(t, direct, false)
	joined := strings.Join(changes, "\n")
	for _, want := range []string{"douala + tunnel douala-yaounde", "yaounde + tunnel douala-yaounde", "douala ↻ tunnel douala-cloud", "cloud ↻ tunnel douala-cloud", "cloud ↻ tunnel yaounde-cloud"} {
		if !strings.Contains(joined, want) {
			t.Errorf("plan with a direct link lacks %q:\n%s", want, joined)
		}
	}
	planAll(t, direct, true)
	if again := planAll(t, direct, false); len(again) != 0 {
		t.Fatalf("plan after applying the direct link is not empty:\n%s", strings.Join(again, "\n"))
	}
	for _, link := range direct.Links {
		if err := WaitUp(ctx, direct, link.Name(), 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The reloaded hub link renegotiated: douala no longer reaches yaounde's LAN
	// through the hub, only through the direct link.
	st, err := Status(ctx, direct, "douala")
	if err != nil {
		t.Fatal(err)
	}
	for _, ls := range st {
		e := ls.Ends[0]
		want := map[string]string{"douala-cloud": "10.30.0.0/24", "douala-yaounde": "10.20.0.0/24"}[ls.Link]
		if strings.Join(e.RemoteTS, " ") != want {
			t.Errorf("douala %s: remote selectors %v after reload, want %s", ls.Link, e.RemoteTS, want)
		}
	}

	// Other IKE proposals everywhere: list-conns does not show proposals, but the
	// child name carries their version, so every end reloads and renegotiates
	// (whatever the order); then the plan is empty again.
	ecp := l.reload(t, "douala:tunnel.peers=cloud,yaounde", "tunnel.ike_proposals=aes128gcm16-prfsha256-ecp256")
	changes = planAll(t, ecp, false)
	if len(changes) != 2*len(ecp.Links) || !strings.Contains(strings.Join(changes, "\n"), "child: douala-cloud-lan-") {
		t.Fatalf("plan after a proposal change:\n%s", strings.Join(changes, "\n"))
	}
	planAll(t, ecp, true)
	for _, link := range ecp.Links {
		if err := WaitUp(ctx, ecp, link.Name(), 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if again := planAll(t, ecp, false); len(again) != 0 {
		t.Fatalf("plan after renegotiating with the new proposals is not empty:\n%s", strings.Join(again, "\n"))
	}

	// Back to hub and spoke: the direct link is removed at both ends.
	changes = planAll(t, l.topo, false)
	joined = strings.Join(changes, "\n")
	for _, want := range []string{"douala - tunnel douala-yaounde", "yaounde - tunnel douala-yaounde"} {
		if !strings.Contains(joined, want) {
			t.Errorf("plan back to hub and spoke lacks %q:\n%s", want, joined)
		}
	}
}

func mustBuild(t *testing.T, topo *sites.Topology) []*Gateway {
	t.Helper()
	gws, err := Build(topo)
	if err != nil {
		t.Fatal(err)
	}
	return gws
}

// TestPlanRefusesUnreadablePSK: with tunnel.auth psk, a key whose source is unset
// or unreadable fails the plan naming the link and the reference (never a value),
// before the gateway is reached.
func TestPlanRefusesUnreadablePSK(t *testing.T) {
	dir := t.TempDir()
	for name, set := range map[string][]string{
		"env unset":         {"tunnel.psk.env=TN_TEST_UNSET_PSK"},
		"file is directory": {"tunnel.psk.file=" + dir},
	} {
		t.Run(name, func(t *testing.T) {
			topo := loadTopo(t, append([]string{"tunnel.auth=psk", "gateway.vici=unix:///nonexistent/charon.vici"}, set...)...)
			site := topo.Site("douala")
			_, err := Part{}.Plan(context.Background(), topo, site)
			ref := site.Tunnel.PSK.String()
			if err == nil || !strings.Contains(err.Error(), "pre-shared key") || !strings.Contains(err.Error(), ref) {
				t.Fatalf("plan: %v; want an error naming the pre-shared key %s", err, ref)
			}
		})
	}
}
