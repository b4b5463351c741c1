package tunnels

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
)

// serve accepts connections in ns on addr and runs handle on each (closing it after).
func serve(t testing.TB, ns, addr string, handle func(net.Conn)) {
	t.Helper()
	ln, err := netns.Listen(ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				handle(c)
			}()
		}
	}()
}

// echoServer answers each connection's first line with "site:<line>".
func echoServer(t testing.TB, ns, addr, site string) {
	serve(t, ns, addr, func(c net.Conn) {
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			fmt.Fprintf(c, "%s:%s", site, line)
		}
	})
}

// roundTrip dials from a namespace and returns the reply to "ping".
func roundTrip(ctx context.Context, ns, addr string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return roundTripLine(ctx, ns, addr, "ping")
}

// statusOf is the status of douala-cloud, the link the lab tests cut and restore.
func statusOf(t *testing.T, l *tnLab, sitesSel ...string) LinkStatus {
	const link = "douala-cloud"
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
	st := statusOf(t, l)
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

	// On the WAN only encapsulated ESP (UDP 4500) passes between the gateways; the
	// payload never appears in clear.
	checkWANEncrypted(t, l, cloudAddr)

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
	if st := statusOf(t, l); st.State != StateCut {
		t.Fatalf("status after cut: %+v", st)
	}
	if st := statusOf(t, l, "douala"); st.State != StateCut || len(st.Ends) != 1 {
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
	if st := statusOf(t, l); st.State != StateUp {
		t.Fatalf("status after heal: %+v", st)
	}
	if reply, err := roundTrip(ctx, "tn-h-douala", cloudAddr, 3*time.Second); err != nil || reply != "cloud:ping" {
		t.Fatalf("after heal: %q %v", reply, err)
	}

	// A link that is down but not cut (SAs gone, connection still loaded): status says
	// down, Heal brings it up too.
	douala, err := BuildSite(l.topo, "douala")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(ctx, douala)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Terminate(ctx, "douala-cloud", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if st := statusOf(t, l, "douala"); st.State != StateDown {
		t.Fatalf("status after terminate: %+v", st)
	}
	if err := Heal(ctx, l.topo, "douala-cloud"); err != nil {
		t.Fatal(err)
	}
	if reply, err := roundTrip(ctx, "tn-h-douala", cloudAddr, 3*time.Second); err != nil || reply != "cloud:ping" {
		t.Fatalf("after heal of a down link: %q %v", reply, err)
	}
}

// roundTripLine sends one line and returns the reply.
func roundTripLine(ctx context.Context, ns, addr, line string) (string, error) {
	c, err := netns.DialContext(ctx, ns, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	r, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(r), err
}

var ipLine = regexp.MustCompile(`IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+):`)

func checkWANEncrypted(t *testing.T, l *tnLab, addr string) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("tcpdump is not installed: run `make deps` (the WAN capture check needs it)")
	}
	pcap := filepath.Join(l.dir, "wan.pcap")
	cmd := exec.Command("ip", "netns", "exec", "tn-wan", "tcpdump", "-Z", "root", "-i", "br0", "-nn", "-U", "--immediate-mode", "-s", "0", "-w", pcap, "ip and src net 192.0.2.0/24 and dst net 192.0.2.0/24")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until tcpdump listens.
	for i := 0; i < 100 && !strings.Contains(stderr.String(), "listening"); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	secret := fmt.Sprintf("TN-PAYLOAD-%d-MUST-NOT-BE-SEEN", time.Now().UnixNano())
	reply, err := roundTripLine(context.Background(), "tn-h-douala", addr, secret)
	time.Sleep(200 * time.Millisecond)
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	if err != nil || reply != "cloud:"+secret {
		t.Fatalf("payload through the tunnel: %q %v", reply, err)
	}
	raw, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the payload crossed the WAN in clear")
	}
	out, err := exec.Command("tcpdump", "-nn", "-r", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v: %s", err, out)
	}
	encap := 0
	for _, line := range strings.Split(string(out), "\n") {
		m := ipLine.FindStringSubmatch(line)
		if m == nil {
			if strings.Contains(line, " IP ") {
				t.Errorf("WAN carried a non-UDP IP packet: %s", line)
			}
			continue
		}
		if m[2] != "4500" || m[4] != "4500" {
			t.Errorf("WAN carried something other than UDP 4500: %s", line)
			continue
		}
		encap++
	}
	if encap == 0 {
		t.Fatalf("no UDP 4500 packets captured on the WAN (%d bytes of pcap):\n%s\ntcpdump: %s", len(raw), out, stderr.String())
	}
	t.Logf("WAN capture: %d UDP 4500 packets, payload not in clear", encap)
}

// TestLabPSK brings the tunnels up with pre-shared keys (an explicit opt-in), loaded
// over vici with load-shared, never written to a file.
func TestLabPSK(t *testing.T) {
	t.Setenv("TN_LAB_PSK", "tn-lab-psk-"+fmt.Sprint(time.Now().UnixNano()))
	l := startTNLab(t, "tunnel.auth=psk", "tunnel.psk.env=TN_LAB_PSK")
	ctx := context.Background()
	l.installAll(ctx)
	for _, link := range l.topo.Links {
		if err := WaitUp(ctx, l.topo, link.Name(), 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	addr := net.JoinHostPort(l.hostAddr("cloud"), "7003")
	echoServer(t, "tn-h-cloud", addr, "cloud")
	if reply, err := roundTrip(ctx, "tn-h-douala", addr, 3*time.Second); err != nil || reply != "cloud:ping" {
		t.Fatalf("douala → cloud with PSK: %q %v", reply, err)
	}
}
