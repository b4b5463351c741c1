package tunnels_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/tunnels"
	"github.com/sitectl/sitectl/tunnels/tunneltest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// TestLabSharedLab runs the tunnels against the shared `sitectl lab` (charon per
// gateway namespace started by the lab, one dockerd per node namespace): install over
// vici, every link up, TCP from a douala node to a cloud node through the tunnel, cut
// and heal. The lab is left with every link up.
func TestLabSharedLab(t *testing.T) {
	l := labtest.Shared(t)
	topo := l.Topo
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	gws, err := tunnels.Build(topo)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		s := topo.Site(g.Site)
		ca, gwp := tunnels.SiteCerts(topo, s)
		if _, _, err := tunnels.Ensure(ca, gwp, g.ID, s.Tunnel.KeyType, s.Tunnel.CertLifetime.D()); err != nil {
			t.Fatal(err)
		}
	}
	// Installing also gives the hub its transit addresses (the lab reach runs ip in its namespace).
	for _, g := range gws {
		if err := tunneltest.Install(ctx, topo, g); err != nil {
			t.Fatal(err)
		}
	}
	for _, link := range topo.Links {
		if err := tunnels.WaitUp(ctx, topo, link.Name(), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	cloud, douala := topo.Site("cloud"), topo.Site("douala")
	cloudNS, err := l.Namespace("cloud/" + cloud.Nodes[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	doualaNS, err := l.Namespace("douala/" + douala.Nodes[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(cloud.Nodes[0].Address, "7011")
	ln, err := netns.Listen(cloudNS, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "cloud")
			_ = c.Close()
		}
	}()
	dial := func() (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := netns.DialContext(ctx, doualaNS, "tcp", addr)
		if err != nil {
			return "", err
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		s, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(s), err
	}
	if got, err := dial(); err != nil || got != "cloud" {
		t.Fatalf("douala node → cloud node through the tunnel: %q %v", got, err)
	}

	if err := tunnels.Cut(ctx, topo, "douala-cloud"); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			_ = tunnels.Heal(context.Background(), topo, "douala-cloud")
		}
	}()
	if got, err := dial(); err == nil {
		t.Fatalf("after cut douala → cloud still answered %q", got)
	}
	st, err := tunnels.Status(ctx, topo, "douala")
	if err != nil || len(st) == 0 || st[0].Link != "douala-cloud" || st[0].State != tunnels.StateCut {
		t.Fatalf("status --site douala after cut: %+v %v", st, err)
	}
	if err := tunnels.Heal(ctx, topo, "douala-cloud"); err != nil {
		t.Fatal(err)
	}
	healed = true
	if got, err := dial(); err != nil || got != "cloud" {
		t.Fatalf("after heal: %q %v", got, err)
	}
}
