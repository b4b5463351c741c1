package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
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
	ok, site, id := false, "", ""
	if err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
		ok, site = resp.StatusCode >= 200 && resp.StatusCode < 300, servedBy(b)
		if ok && method == http.MethodPost {
			id = writtenID(b)
		}
	}
	if ctx.Err() != nil {
		return // stopped: not an answer the clients saw
	}
	w.record(e.Site, ok, site)
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

func (w *Watch) record(site string, ok bool, servedBy string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	st := w.statsOf(site, w.phase)
	st.requests++
	if !ok {
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
		w.stats[k] = &phaseStats{served: map[string]int{}}
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
			if st.requests > 0 {
				a.Success = float64(st.ok) / float64(st.requests)
			}
			out = append(out, a)
		}
	}
	return out
}
