package audit

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/sites"
)

type fakeConn struct{ net.Conn }

func (fakeConn) Close() error { return nil }

// TestExposureFindings: what answers decides the finding; dropped is the only pass;
// an address that cannot be probed is high and unknown, never a pass.
func TestExposureFindings(t *testing.T) {
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{"10.10.0.12:5432": true, "10.10.0.11:80": true, "10.30.0.11:80": true}
	refused := map[string]bool{"10.30.0.11:9200": true}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		switch {
		case open[addr]:
			return fakeConn{}, nil
		case refused[addr]:
			return nil, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
		case strings.HasPrefix(addr, "10.20.") || strings.HasPrefix(addr, "198.51.100.20"):
			return nil, &net.OpError{Op: "dial", Err: syscall.ENETUNREACH}
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	findings, probes, err := Exposure(context.Background(), topo, topo.Sites, dial, 20*time.Millisecond, 200)
	if err != nil {
		t.Fatal(err)
	}
	if probes < 3*2*len(Ports) {
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
