package tunnels

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
)

// echoServer answers each line on the host of site with "site:<line>".
func echoServer(t testing.TB, ns, addr, site string) {
	t.Helper()
	ln, err := netns.Listen(ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s:%s", site, line)
			}()
		}
	}()
}

// roundTrip dials from a namespace and returns the reply to "ping".
func roundTrip(ctx context.Context, ns, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := netns.DialContext(ctx, ns, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func statusOf(t *testing.T, l *tnLab, link string, sitesSel ...string) LinkStatus {
	t.Helper()
	st, err := Status(context.Background(), l.topo, sitesSel...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Link == link {
			return s
		}
	}
	t.Fatalf("status has no link %s: %+v", link, st)
	return LinkStatus{}
}

func TestLabTunnels(t *testing.T) {
	l := startTNLab(t)
	ctx := context.Background()
	l.installAll(ctx)
	cloudAddr := net.JoinHostPort(l.hostAddr("cloud"), "7001")
	yaoundeAddr := net.JoinHostPort(l.hostAddr("yaounde"), "7001")
	echoServer(t, "tn-h-cloud", cloudAddr, "cloud")
	echoServer(t, "tn-h-yaounde", yaoundeAddr, "yaounde")

	// All tunnels come up.
	for _, link := range l.topo.Links {
		if err := WaitUp(ctx, l.topo, link.Name(), 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	var reply string
	var err error
	for i := 0; i < 5; i++ {
		if reply, err = roundTrip(ctx, "tn-h-douala", cloudAddr, 3*time.Second); err == nil {
			break
		}
	}
	if reply != "cloud:ping" {
		t.Fatalf("douala LAN → cloud LAN through the tunnel: reply %q, err %v", reply, err)
	}
	st := statusOf(t, l, "douala-cloud")
	if st.State != StateUp || len(st.Ends) != 2 {
		gws, _ := Build(l.topo)
		if c, err := Dial(ctx, gws[0]); err == nil {
			sas, err := c.SAs(ctx)
			t.Logf("cloud SAs: %+v %v", sas, err)
			c.Close()
		}
		t.Fatalf("status after traffic: %+v", st)
	}
	for _, e := range st.Ends {
		if e.PacketsIn == 0 || e.PacketsOut == 0 || e.Since.IsZero() {
			t.Errorf("end %s: counters/since not reported: %+v", e.Site, e)
		}
	}

	// Spoke to spoke through the hub.
	for i := 0; i < 5; i++ {
		if reply, err = roundTrip(ctx, "tn-h-douala", yaoundeAddr, 3*time.Second); err == nil {
			break
		}
	}
	if reply != "yaounde:ping" {
		t.Fatalf("douala LAN → yaounde LAN via the hub: reply %q, err %v", reply, err)
	}

	// Cut: traffic fails, status says cut, and it stays cut (trap and DPD do not
	// bring it back).
	if err := Cut(ctx, l.topo, "douala-cloud"); err != nil {
		t.Fatal(err)
	}
	if reply, err := roundTrip(ctx, "tn-h-douala", cloudAddr, 2*time.Second); err == nil {
		t.Fatalf("after cut, douala → cloud still answered %q", reply)
	}
	if st := statusOf(t, l, "douala-cloud"); st.State != StateCut {
		t.Fatalf("status after cut: %+v", st)
	}
	if st := statusOf(t, l, "douala-cloud", "douala"); st.State != StateCut || len(st.Ends) != 1 {
		t.Fatalf("status --site douala after cut: %+v", st)
	}
	// The other link is untouched.
	if reply, err := roundTrip(ctx, "tn-h-yaounde", cloudAddr, 3*time.Second); err != nil || reply != "cloud:ping" {
		t.Fatalf("yaounde → cloud during douala's cut: %q %v", reply, err)
	}

	// Heal: up again, traffic flows.
	if err := Heal(ctx, l.topo, "douala-cloud"); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, l, "douala-cloud"); st.State != StateUp {
		t.Fatalf("status after heal: %+v", st)
	}
	if reply, err := roundTrip(ctx, "tn-h-douala", cloudAddr, 3*time.Second); err != nil || reply != "cloud:ping" {
		t.Fatalf("after heal: %q %v", reply, err)
	}
}
