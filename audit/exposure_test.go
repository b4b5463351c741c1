package audit

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/sites"
)

type fakeConn struct{ net.Conn }

func (fakeConn) Close() error { return nil }

// udpConn answers a UDP probe: with a datagram (reply), an ICMP port unreachable
// (refused), or silence until the deadline.
type udpConn struct {
	net.Conn
	reply, refused bool
	deadline       time.Time
}

func (c *udpConn) Close() error                  { return nil }
func (c *udpConn) SetDeadline(t time.Time) error { c.deadline = t; return nil }
func (c *udpConn) Write(b []byte) (int, error)   { return len(b), nil }
func (c *udpConn) Read(b []byte) (int, error) {
	switch {
	case c.reply:
		return copy(b, "x"), nil
	case c.refused:
		return 0, &net.OpError{Op: "read", Err: syscall.ECONNREFUSED}
	}
	time.Sleep(time.Until(c.deadline))
	return 0, &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
}

// TestExposureFindings: what answers decides the finding; dropped is the only pass;
// an address that cannot be probed is high and unknown, never a pass.
func TestExposureFindings(t *testing.T) {
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{"10.10.0.12:5432": true, "10.10.0.11:80": true, "10.30.0.11:80": true}
	refused := map[string]bool{"10.30.0.11:9200": true}
	udpOpen := map[string]bool{"10.10.0.12:53": true, "198.51.100.10:500": true}
	udpRefused := map[string]bool{"10.30.0.11:4789": true, "203.0.113.30:4500": true}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "10.20.") || strings.HasPrefix(addr, "198.51.100.20") {
			return nil, &net.OpError{Op: "dial", Err: syscall.ENETUNREACH}
		}
		if network == "udp" {
			return &udpConn{reply: udpOpen[addr], refused: udpRefused[addr]}, nil
		}
		switch {
		case open[addr]:
			return fakeConn{}, nil
		case refused[addr]:
			return nil, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	findings, probes, err := Exposure(context.Background(), topo, topo.Sites, dial, 20*time.Millisecond, 200)
	if err != nil {
		t.Fatal(err)
	}
	if probes < 3*2*(len(Ports)+len(UDPPorts)) {
		t.Errorf("%d probes", probes)
	}
	got := map[string]string{}
	for _, f := range findings {
		got[f.Site+" "+f.Object] = f.Severity + " " + f.State
		if f.Severity != Info && f.Fix == "" {
			t.Errorf("finding without a fix: %+v", f)
		}
	}
	want := map[string]string{
		"douala 10.10.0.12:5432/tcp": "high open",
		"douala 10.10.0.11:80/tcp":   "info open",
		"douala 10.10.0.11:443/tcp":  "medium filtered", // the edge port does not answer
		"cloud 10.30.0.11:80/tcp":    "info open",
		"cloud 10.30.0.11:9200/tcp":  "medium closed",
		"yaounde 10.20.0.11":         "high unknown",
		// UDP: a reply is open, an ICMP unreachable closed, silence the pass; IKE
		// on a gateway's WAN address answering a non-peer is medium.
		"douala 10.10.0.12:53/udp":     "high open",
		"douala 198.51.100.10:500/udp": "medium open",
		"cloud 10.30.0.11:4789/udp":    "medium closed",
		"cloud 203.0.113.30:4500/udp":  "medium closed",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want)+2 { // + cloud's 443 and yaounde's gateway WAN address
		t.Errorf("findings: %v", got)
	}
}
