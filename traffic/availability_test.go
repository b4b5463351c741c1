package traffic

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestWatch: steady traffic through a phase where the site answers 503 shows a
// success rate of 0, a gap as long as the phase and its failures counted as
// "http 503"; before and after, every request succeeds and the gaps are short.
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
		t.Logf("%s %s: %d/%d ok, longest gap %s, served by %v, errors %v", a.Site, a.Phase, a.OK, a.Requests, a.LongestGap, a.ServedBy, a.Errors)
		switch a.Phase {
		case "before", "after":
			if a.Requests < 10 || a.Success < 0.9 || a.LongestGap > 300*time.Millisecond || a.ServedBy["douala"] == 0 {
				t.Errorf("%s: %+v, want every request answered and short gaps", a.Phase, a)
			}
		case "during":
			if a.Requests < 10 || a.OK > 2 || a.LongestGap < 700*time.Millisecond || a.Errors["http 503"] != a.Requests-a.OK {
				t.Errorf("during: %+v, want (almost) no success and a gap of the phase's length", a)
			}
		}
	}
}

// TestWatchFailover: a site whose answers fail for a while and then come from a
// peer shows a failover in that phase (the peer, a detection time between the
// first failure and the peer's first answer, and the success share from then
// on); a peer's answer with no failure before it (the peer's small weight in the
// balancer) is not a failover.
func TestWatchFailover(t *testing.T) {
	var mode atomic.Int32 // 0: douala, 1: 503, 2: cloud
	var n atomic.Int64
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		site := "douala"
		switch mode.Load() {
		case 0:
			if n.Add(1) == 3 { // one answer by the peer while all is well
				site = "cloud"
			}
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case 2:
			site = "cloud"
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"site": site})
	}))
	defer s.Close()
	entries := []Entry{{Site: "douala", URLs: []string{s.URL}, Insecure: true}}
	w := StartWatch(context.Background(), entries, 50)
	time.Sleep(400 * time.Millisecond)
	w.Phase("during")
	mode.Store(1)
	time.Sleep(300 * time.Millisecond)
	mode.Store(2)
	time.Sleep(500 * time.Millisecond)
	mode.Store(0)
	w.Phase("after")
	time.Sleep(300 * time.Millisecond)
	got := w.Stop(entries)
	if len(got) != 3 {
		t.Fatalf("phases %+v, want before, during, after", got)
	}
	for _, a := range got {
		t.Logf("%s: %d/%d ok, served by %v, failover %+v", a.Phase, a.OK, a.Requests, a.ServedBy, a.Failover)
		switch {
		case a.Phase != "during" && a.Failover != nil:
			t.Errorf("%s: failover %+v, want none (no failure came before a peer's answer)", a.Phase, a.Failover)
		case a.Phase == "before" && a.ServedBy["cloud"] != 1:
			t.Errorf("before: served by %v, want one answer by cloud", a.ServedBy)
		case a.Phase == "during":
			f := a.Failover
			if f == nil {
				t.Fatalf("during: no failover, want one to cloud")
			}
			if f.Peer != "cloud" || f.Detection <= 0 || f.Detection > 800*time.Millisecond || f.Requests < 5 || f.OK != f.Requests || f.Success != 1 ||
				a.Requests-f.Requests < 5 {
				t.Errorf("during: failover %+v of %d requests; want cloud, detected after the failures began, every later request answered", f, a.Requests)
			}
		}
	}
}

// TestWatchWrites: the writes the API acknowledged (201 with an id) are kept with
// their owner (the site that served them), entry point and phase; a refused write
// and the reads are not.
func TestWatchWrites(t *testing.T) {
	var n atomic.Int64
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			_ = json.NewEncoder(w).Encode(map[string]any{"site": "douala", "rows": []any{}})
			return
		}
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": fmt.Sprintf("id-%d", n.Load()), "site": "cloud"})
	}))
	defer s.Close()
	entries := []Entry{{Site: "douala", URLs: []string{s.URL}, Insecure: true}}
	w := StartWatch(context.Background(), entries, 100)
	time.Sleep(700 * time.Millisecond)
	w.Phase("during")
	time.Sleep(700 * time.Millisecond)
	w.Stop(entries)
	got := w.Writes()
	posts := int(n.Load())
	// A POST in flight when Stop cancelled it may be counted by the server only.
	if want := (posts + 1) / 2; posts < 4 || len(got) > want || len(got) < want-2 {
		t.Fatalf("%d POSTs (every second refused), %d writes kept: %+v", posts, len(got), got)
	}
	phases := map[string]int{}
	for _, wr := range got {
		if wr.Owner != "cloud" || wr.Entry != "douala" || wr.ID == "" {
			t.Errorf("write %+v: want owner cloud (who served it), entry douala, an id", wr)
		}
		phases[wr.Phase]++
	}
	if phases["before"] == 0 || phases["during"] == 0 {
		t.Errorf("writes per phase %v, want some in before and during", phases)
	}
}
