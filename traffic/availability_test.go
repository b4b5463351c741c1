package traffic

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestWatch: steady traffic through a phase where the site answers 503 shows a
// success rate of 0 and a gap as long as the phase; before and after, every
// request succeeds and the gaps are short.
func TestWatch(t *testing.T) {
	var down atomic.Bool
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"site": "douala"})
	}))
	defer s.Close()
	entries := []Entry{{Site: "douala", URLs: []string{s.URL}, Insecure: true}}
	w := StartWatch(context.Background(), entries, 50)
	time.Sleep(500 * time.Millisecond)
	down.Store(true)
	w.Phase("during")
	time.Sleep(800 * time.Millisecond)
	down.Store(false)
	w.Phase("after")
	time.Sleep(500 * time.Millisecond)
	got := w.Stop(entries)
	if len(got) != 3 {
		t.Fatalf("phases %+v, want before, during, after", got)
	}
	for _, a := range got {
		t.Logf("%s %s: %d/%d ok, longest gap %s, served by %v", a.Site, a.Phase, a.OK, a.Requests, a.LongestGap, a.ServedBy)
		switch a.Phase {
		case "before", "after":
			if a.Requests < 10 || a.Success < 0.9 || a.LongestGap > 300*time.Millisecond || a.ServedBy["douala"] == 0 {
				t.Errorf("%s: %+v, want every request answered and short gaps", a.Phase, a)
			}
		case "during":
			if a.Requests < 10 || a.OK > 2 || a.LongestGap < 700*time.Millisecond {
				t.Errorf("during: %+v, want (almost) no success and a gap of the phase's length", a)
			}
		}
	}
}
