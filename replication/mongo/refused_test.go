package mongo

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// refusingDialer dials every member at one local address where nothing listens.
type refusingDialer struct{ addr string }

func (d refusingDialer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, network, d.addr)
}

// TestReadLiveMembersRefusing: when every member refuses connections (the mongo
// stack not deployed yet), ReadLive says no member answers, each member's error
// names the refused connection, and no driver client was opened: the driver would
// have retried each member until the timeout (3 s per plan of every site).
func TestReadLiveMembersRefusing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil { // nothing listens there now
		t.Fatal(err)
	}
	c := NewConn(loadTopo(t, nil))
	c.Dialer = refusingDialer{addr: addr}
	defer c.Close()
	start := time.Now()
	live, err := c.ReadLive(context.Background())
	t.Logf("ReadLive with every member refusing: %s", time.Since(start))
	if err == nil || !strings.Contains(err.Error(), "no MongoDB member answers") {
		t.Fatalf("ReadLive: %v, want no member answers", err)
	}
	if live == nil || len(live.Members) == 0 {
		t.Fatalf("live %+v: want every member, unreachable", live)
	}
	for _, m := range live.Members {
		if m.Reachable || !strings.HasPrefix(m.Error, "unreachable: ") || !strings.Contains(m.Error, "connection refused") {
			t.Errorf("member %s: reachable %v, error %q; want unreachable: … connection refused", m.Host, m.Reachable, m.Error)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.clients) != 0 {
		t.Errorf("%d driver clients opened for members that refuse connections, want none", len(c.clients))
	}
}
