package sites

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestReachHTTPClient(t *testing.T) {
	if c := (Reach{}).HTTPClient(3 * time.Second); c.Transport != nil || c.Timeout != 3*time.Second {
		t.Errorf("zero Reach: %+v, want the default transport and a 3s timeout", c)
	}
	refused := errors.New("dialled through the reach")
	var dialled string
	r := Reach{Dial: func(_ context.Context, network, addr string) (net.Conn, error) {
		dialled = network + " " + addr
		return nil, refused
	}}
	c := r.HTTPClient(time.Second)
	_, err := c.Get("http://192.0.2.1:9093/api/v2/alerts")
	if !errors.Is(err, refused) || dialled != "tcp 192.0.2.1:9093" {
		t.Errorf("get: %v (dialled %q), want the reach's dialer used for tcp 192.0.2.1:9093", err, dialled)
	}
	if tr, ok := c.Transport.(*http.Transport); !ok || !tr.DisableKeepAlives {
		t.Errorf("transport %T, want an http.Transport without keep-alives", c.Transport)
	}
}
