package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Availability is what one site's clients saw during one phase of a drill.
type Availability struct {
	Site     string  `json:"site"`
	Phase    string  `json:"phase"` // before, during, after (the fault)
	Requests int     `json:"requests"`
	OK       int     `json:"ok"` // 2xx answers
	Success  float64 `json:"success"`
	// LongestGap is the longest time without a successful answer in the phase
	// (from the phase's start, between successes, to its end).
	LongestGap time.Duration  `json:"longest_gap_ns"`
	ServedBy   map[string]int `json:"served_by,omitempty"`
	// Errors counts the failed requests by kind (as sitectl load names them:
	// "http 503", "timeout", ...).
	Errors map[string]int `json:"errors,omitempty"`
	// Failover is set when, after a failed request, another site's API served one
	// of this site's requests in the phase (the gateway failed /api over to a peer).
	Failover *Failover `json:"failover,omitempty"`
}

// Failover is what a site's clients saw once its gateway failed over: Detection
// is the time from the phase's first failed request to the first answer after it
// served by another site's API; Requests and OK count from that answer to the
// phase's end. (A peer's answer before any failure is the peer's small share of
// the balancer, docs/gateway.md: not a failover.)
type Failover struct {
	Peer      string        `json:"peer"`
	Detection time.Duration `json:"detection_ns"`
	Requests  int           `json:"requests"`
	OK        int           `json:"ok"`
	Success   float64       `json:"success"`
}

// Watch keeps steady traffic on each site's entry point (a drill's clients) and
// counts what they saw per phase.
type Watch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	now    func() time.Time

	mu     sync.Mutex
	phase  string
	start  map[string]time.Time // phase → when it began
	phases []string
	stats  map[[2]string]*phaseStats // site, phase
	writes []Write
}

// Write is one write the clients made through a gateway that the API acknowledged
// (2xx with the row's id): the row's key and owner (the site whose API wrote it,
// a peer after failover), the entry point it went through and the phase it was
// answered in. Drills verify these like their own rows.
type Write struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	Entry string `json:"entry"`
	Phase string `json:"phase"`
}

type phaseStats struct {
	requests, ok int
	lastOK       time.Time
	gap          time.Duration
	served       map[string]int
	errors       map[string]int
	// failover: the first failure, the first answer by another site, and the
	// requests from then on
	firstFail, firstPeer time.Time
	peer                 string
	peerReqs, peerOK     int
}

// StartWatch starts rate requests/s (reads, one write in ten) per entry, in
// phase "before", until Stop.
func StartWatch(ctx context.Context, entries []Entry, rate int) *Watch {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watch{cancel: cancel, now: time.Now, stats: map[[2]string]*phaseStats{}, start: map[string]time.Time{}}
	w.Phase("before")
	for _, e := range entries {
		c := e.Client(2*time.Second, 4)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			t := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
			defer t.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				w.wg.Add(1)
				go func(n int) { defer w.wg.Done(); w.one(ctx, c, e, n) }(n)
			}
		}()
	}
	return w
}

func (w *Watch) one(ctx context.Context, c *http.Client, e Entry, n int) {
	url := e.URLs[n%len(e.URLs)] + "/api/rows"
	method, body := http.MethodGet, []byte(nil)
	if n%10 == 9 {
		method, body = http.MethodPost, []byte(`{"body":"sitectl drill availability"}`)
	} else {
		url += "?limit=1"
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	code, site, msg, id := uint16(0), "", "", ""
	if err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
		code, site = uint16(resp.StatusCode), servedBy(b)
		if code >= 200 && code < 300 && method == http.MethodPost {
			id = writtenID(b)
		}
	} else {
		msg = err.Error()
	}
	if ctx.Err() != nil {
		return // stopped: not an answer the clients saw
	}
	kind := errorKind(code, msg)
	if kind == "" && (code < 200 || code >= 300) {
		kind = "http " + strconv.Itoa(int(code)) // a 3xx: not an answer
	}
	w.record(e.Site, kind, site)
	if id != "" {
		w.mu.Lock()
		w.writes = append(w.writes, Write{ID: id, Owner: site, Entry: e.Site, Phase: w.phase})
		w.mu.Unlock()
	}
}

// writtenID reads the id of the row a POST /api/rows answer says was written.
func writtenID(body []byte) string {
	var a struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &a) != nil {
		return ""
	}
	return a.ID
}

// Writes returns the acknowledged writes so far, in the order they were answered.
func (w *Watch) Writes() []Write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Write(nil), w.writes...)
}

// record counts one answer: kind is "" for a success, else the error's kind.
func (w *Watch) record(site, kind, servedBy string) {
	ok := kind == ""
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	st := w.statsOf(site, w.phase)
	st.requests++
	// A peer's answer before any failure is the peer's small weight in the
	// balancer (docs/gateway.md), not a failover.
	if ok && servedBy != "" && servedBy != site && st.firstPeer.IsZero() && !st.firstFail.IsZero() {
		st.firstPeer, st.peer = now, servedBy
	}
	if !st.firstPeer.IsZero() {
		st.peerReqs++
		if ok {
			st.peerOK++
		}
	}
	if !ok {
		st.errors[kind]++
		if st.firstFail.IsZero() {
			st.firstFail = now
		}
		return
	}
	st.ok++
	last := st.lastOK
	if last.IsZero() {
		last = w.start[w.phase]
	}
	st.gap = max(st.gap, now.Sub(last))
	st.lastOK = now
	if servedBy != "" {
		st.served[servedBy]++
	}
}

func (w *Watch) statsOf(site, phase string) *phaseStats {
	k := [2]string{site, phase}
	if w.stats[k] == nil {
		w.stats[k] = &phaseStats{served: map[string]int{}, errors: map[string]int{}}
	}
	return w.stats[k]
}

// Phase starts the named phase (a phase already begun is not restarted).
func (w *Watch) Phase(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.start[name]; ok {
		return
	}
	now := w.now()
	if w.phase != "" {
		w.close(w.phase, now)
	}
	w.phase, w.start[name] = name, now
	w.phases = append(w.phases, name)
}

// close counts the time from a phase's last success to its end as a gap.
func (w *Watch) close(phase string, end time.Time) {
	for k, st := range w.stats {
		if k[1] != phase {
			continue
		}
		last := st.lastOK
		if last.IsZero() {
			last = w.start[phase]
		}
		st.gap = max(st.gap, end.Sub(last))
	}
}

// Stop stops the clients and returns what each site saw per phase, sites in the
// order of entries, phases in the order they began.
func (w *Watch) Stop(entries []Entry) []Availability {
	w.cancel()
	w.wg.Wait()
	return w.Snapshot(entries)
}

// Snapshot returns what each site saw per phase so far (the current phase up to
// now), sites in the order of entries, phases in the order they began; the
// clients keep going.
func (w *Watch) Snapshot(entries []Entry) []Availability {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.close(w.phase, w.now())
	var out []Availability
	for _, e := range entries {
		for _, p := range w.phases {
			st := w.stats[[2]string{e.Site, p}]
			if st == nil {
				continue
			}
			a := Availability{Site: e.Site, Phase: p, Requests: st.requests, OK: st.ok, LongestGap: st.gap, ServedBy: maps.Clone(st.served)}
			if len(st.errors) > 0 {
				a.Errors = maps.Clone(st.errors)
			}
			if st.requests > 0 {
				a.Success = float64(st.ok) / float64(st.requests)
			}
			if !st.firstPeer.IsZero() {
				a.Failover = &Failover{Peer: st.peer, Detection: st.firstPeer.Sub(st.firstFail), Requests: st.peerReqs, OK: st.peerOK,
					Success: float64(st.peerOK) / float64(st.peerReqs)}
			}
			out = append(out, a)
		}
	}
	return out
}

// ErrorText is the phase's failed requests by kind, most frequent first, such as
// "http 500×22, timeout×14"; "" when none failed.
func (a Availability) ErrorText() string {
	return kindList(a.Errors, Result{Errors: a.Errors}.ErrKinds())
}

// String is the failover the clients saw, such as "cloud after 0.2s: 91/113
// (80.53%)": the peer, the detection time, and the answers from the peer's first
// one to the phase's end.
func (f *Failover) String() string {
	if f == nil {
		return ""
	}
	return fmt.Sprintf("%s after %s: %d/%d (%.2f%%)", f.Peer, f.Detection.Round(time.Millisecond), f.OK, f.Requests, 100*f.Success)
}

func kindList(m map[string]int, keys []string) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
