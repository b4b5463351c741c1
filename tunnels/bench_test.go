package tunnels

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
)

// BenchmarkLabTunnelSetup measures bringing a cut link back: load the connection at
// both ends, IKE_SA and CHILD_SA negotiation, until both gateways report it up
// (ns/op is the set-up time). It also reports the first install of all links.
func BenchmarkLabTunnelSetup(b *testing.B) {
	l := startTNLab(b)
	ctx := context.Background()
	start := time.Now()
	l.installAll(ctx)
	for _, link := range l.topo.Links {
		if err := WaitUp(ctx, l.topo, link.Name(), 20*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	first := time.Since(start)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := Cut(ctx, l.topo, "douala-cloud"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := Heal(ctx, l.topo, "douala-cloud"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(first.Milliseconds()), "install-all-ms")
}

// BenchmarkLabThroughput sends the same bounded transfer through the douala–cloud
// tunnel (LAN host to LAN host) and over the bare WAN link (gateway to gateway, no
// IPsec), in one run, and reports both rates.
func BenchmarkLabThroughput(b *testing.B) {
	const size = 64 << 20
	l := startTNLab(b)
	ctx := context.Background()
	l.installAll(ctx)
	if err := WaitUp(ctx, l.topo, "douala-cloud", 20*time.Second); err != nil {
		b.Fatal(err)
	}
	tunnelAddr := sink(b, "tn-h-cloud", net.JoinHostPort(l.hostAddr("cloud"), "7002"))
	wanAddr := sink(b, "tn-gw-cloud", net.JoinHostPort(wanAddr(0), "7002"))
	var tunnelD, wanD time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := send(ctx, "tn-h-douala", tunnelAddr, size)
		if err != nil {
			b.Fatalf("through the tunnel: %v", err)
		}
		tunnelD += d
		if d, err = send(ctx, "tn-gw-douala", wanAddr, size); err != nil {
			b.Fatalf("over the WAN: %v", err)
		}
		wanD += d
	}
	mbit := func(d time.Duration) float64 { return float64(size*8*b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbit(tunnelD), "tunnel-Mbit/s")
	b.ReportMetric(mbit(wanD), "wan-Mbit/s")
	b.ReportMetric(float64(size>>20), "MiB/transfer")
}

// sink accepts connections in ns, reads each to EOF and answers with the byte count.
func sink(b *testing.B, ns, addr string) string {
	serve(b, ns, addr, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "%d\n", n)
	})
	return addr
}

// send writes size bytes from ns to addr and waits for the receiver's count.
func send(ctx context.Context, ns, addr string, size int) (time.Duration, error) {
	c, err := netns.DialContext(ctx, ns, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	var got int
	if _, err := fmt.Fscan(c, &got); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if got != size {
		return 0, fmt.Errorf("receiver got %d bytes, sent %d", got, size)
	}
	return d, nil
}
