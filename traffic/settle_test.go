package traffic

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitOwn: a gateway that serves /api from its own site is settled; one that
// answers from a peer (failed over) is not, and the error names the site and the
// last answer; one that fails back within the wait is settled once its own API
// answered three times in a row.
func TestWaitOwn(t *testing.T) {
	serve := func(site func() (int, string)) Entry {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/ready" {
				http.NotFound(w, r)
				return
			}
			code, from := site()
			w.WriteHeader(code)
			_, _ = fmt.Fprintf(w, `{"status": "ok", "site": "%s"}`, from)
		}))
		t.Cleanup(s.Close)
		return Entry{Site: "douala", URLs: []string{s.URL}, Insecure: true}
	}
	ctx := context.Background()
	own := serve(func() (int, string) { return 200, "douala" })
	if err := WaitOwn(ctx, []Entry{own}, 2*time.Second, 10*time.Millisecond); err != nil {
		t.Errorf("a gateway served by its own API: %v", err)
	}
	peer := serve(func() (int, string) { return 200, "cloud" })
	err := WaitOwn(ctx, []Entry{peer}, 3*time.Second, 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "site douala") || !strings.Contains(err.Error(), `200 served by "cloud"`) {
		t.Errorf("a gateway served by a peer: %v; want an error naming douala and the peer's answer", err)
	}
	var n atomic.Int64
	back := serve(func() (int, string) {
		switch i := n.Add(1); {
		case i <= 3:
			return 200, "cloud"
		case i == 5:
			return 503, "douala" // one failure in between restarts the count
		default:
			return 200, "douala"
		}
	})
	if err := WaitOwn(ctx, []Entry{back}, 2*time.Second, 10*time.Millisecond); err != nil || n.Load() != 8 {
		t.Errorf("a gateway failing back: %v after %d answers; want settled after 8 (3 by cloud, 1 by douala, a 503, 3 by douala)", err, n.Load())
	}
}
