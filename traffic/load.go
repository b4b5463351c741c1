// Package traffic sends requests through the sites' gateways: `sitectl load` (HTTP
// load with vegeta's library, per-site figures) and the checks that a request
// travels client → Kong → API → database (docs/gateway.md, docs/load.md).
package traffic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/kong"
)

// Entry is a site's entry point: its Kong nodes' HTTPS proxy addresses.
type Entry struct {
	Site string
	URLs []string // https://<node address>:<https port>
	// Dial opens the connections (the site's Reach: in the lab, from its gateway
	// namespace); nil: from this machine's network.
	Dial sites.DialFunc
	// Insecure skips verifying the gateway's certificate (the lab's is self-made).
	Insecure bool
}

// EntryOf returns site's entry point, or one clear error when it has none.
func EntryOf(topo *sites.Topology, site *sites.Site) (Entry, error) {
	if !site.HasStack(kong.Name) {
		return Entry{}, fmt.Errorf("site %s has no entry point: it does not run the kong stack (stacks in %s.yaml); choose a site that does", site.Name, site.Name)
	}
	nodes, err := kong.Nodes(topo, site)
	if err != nil {
		return Entry{}, fmt.Errorf("site %s: entry point: %w", site.Name, err)
	}
	s, err := kong.ReadSettings(topo, site)
	if err != nil {
		return Entry{}, err
	}
	if site.InLab() && site.Reach.Dial == nil {
		return Entry{}, site.NoReach("requests to its entry point")
	}
	e := Entry{Site: site.Name, Dial: site.Reach.Dial, Insecure: site.InLab()}
	for _, n := range nodes {
		e.URLs = append(e.URLs, "https://"+net.JoinHostPort(n.Address, strconv.Itoa(s.HTTPSPort)))
	}
	if len(e.URLs) == 0 {
		return Entry{}, fmt.Errorf("site %s has no entry point: no node matches values.kong.constraints", site.Name)
	}
	return e, nil
}

// Client returns an HTTP client for e, keeping up to conns idle connections, dialled
// with e.Dial when set; the certificate is verified with the system's roots unless
// e.Insecure (the lab's is self-made). TLS sessions are resumed, and at most
// dialing connections are dialled and handshaken at once: a request waiting for a
// new connection takes an idle one as soon as one is free (net/http does so), so
// a burst reuses the connections it has instead of paying one TLS handshake per
// request. Without the bound, a generator asked for more than the machine's
// handshakes per second made a new connection for nearly every request and never
// caught up (BenchmarkGenerator: 2,357–3,847 connections for 2,600–4,000
// requests).
func (e Entry) Client(timeout time.Duration, conns int) *http.Client {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(0),
		InsecureSkipVerify: e.Insecure} //nolint:gosec // the lab's Kong certificate is self-made (lab only)
	dial := e.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	slots := make(chan struct{}, dialing)
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second,
		TLSClientConfig: cfg, DialContext: dial,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			defer func() { <-slots }()
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := cfg.Clone()
			if c.ServerName == "" {
				c.ServerName, _, _ = net.SplitHostPort(addr)
			}
			conn := tls.Client(raw, c)
			if err := conn.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				return nil, err
			}
			return conn, nil
		}}
	return &http.Client{Timeout: timeout, Transport: tr}
}

// dialing bounds the connections one client dials and handshakes at once.
const dialing = 8

// Mix is the share of reads and writes ("read:write", such as 9:1).
type Mix struct{ Read, Write int }

// ParseMix reads --mix.
func ParseMix(s string) (Mix, error) {
	r, w, ok := strings.Cut(s, ":")
	ri, err1 := strconv.Atoi(strings.TrimSpace(r))
	wi, err2 := strconv.Atoi(strings.TrimSpace(w))
	if !ok || err1 != nil || err2 != nil || ri < 0 || wi < 0 || ri+wi == 0 {
		return Mix{}, fmt.Errorf("--mix is %q; want read:write as two whole numbers, not both 0, such as 9:1 or 1:0", s)
	}
	return Mix{Read: ri, Write: wi}, nil
}

// Options are one load run's settings.
type Options struct {
	Rate     int // requests per second per site
	Duration time.Duration
	Mix      Mix
	Timeout  time.Duration
	// Progress, if set, is called about once a second with every site's figures so far.
	Progress func([]Result)
}

// Result is one site's figures.
type Result struct {
	Site       string         `json:"site"`
	Requests   uint64         `json:"requests"`
	Rate       float64        `json:"rate"`       // requests/s sent
	Throughput float64        `json:"throughput"` // successful requests/s
	Success    float64        `json:"success"`    // share of 2xx answers
	P50        time.Duration  `json:"p50_ns"`
	P90        time.Duration  `json:"p90_ns"`
	P99        time.Duration  `json:"p99_ns"`
	Max        time.Duration  `json:"max_ns"`
	Errors     map[string]int `json:"errors,omitempty"` // by kind
	ServedBy   map[string]int `json:"served_by,omitempty"`
	// Buckets is the latency over time: the run cut into BucketWidth slices
	// (by when each request started).
	BucketWidth time.Duration `json:"bucket_ns,omitempty"`
	Buckets     []Bucket      `json:"buckets,omitempty"`
}

// Validate checks opts (one clear error naming the flag).
func (o Options) Validate() error {
	switch {
	case o.Rate <= 0:
		return fmt.Errorf("--rate is %d; want requests per second per site above 0, such as --rate 50", o.Rate)
	case o.Duration <= 0:
		return fmt.Errorf("--duration is %s; want a duration above 0, such as --duration 30s", o.Duration)
	}
	return nil
}

// Run sends load to every entry at once and returns each site's figures.
func Run(ctx context.Context, entries []Entry, opts Options) ([]Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Mix == (Mix{}) {
		opts.Mix = Mix{Read: 9, Write: 1}
	}
	runs := make([]*siteRun, len(entries))
	var wg sync.WaitGroup
	start := time.Now()
	for i, e := range entries {
		runs[i] = newSiteRun(e, start, opts.Duration)
		wg.Add(1)
		go func(r *siteRun) { defer wg.Done(); r.attack(ctx, opts) }(runs[i])
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			out := make([]Result, len(runs))
			for i, r := range runs {
				out[i] = r.result(true)
			}
			return out, ctx.Err()
		case <-tick.C:
			if opts.Progress != nil {
				out := make([]Result, len(runs))
				for i, r := range runs {
					out[i] = r.result(false)
				}
				opts.Progress(out)
			}
		}
	}
}

type siteRun struct {
	entry   Entry
	mu      sync.Mutex
	metrics vegeta.Metrics
	errors  map[string]int
	served  map[string]int
	buckets *buckets
}

func newSiteRun(e Entry, start time.Time, d time.Duration) *siteRun {
	return &siteRun{entry: e, errors: map[string]int{}, served: map[string]int{}, buckets: newBuckets(start, d)}
}

func (r *siteRun) attack(ctx context.Context, opts Options) {
	// Workers (and connections) may grow to what the rate needs while every
	// request takes up to the timeout: a slow site must not slow the pacer down.
	// They start few and grow only when every worker is busy (vegeta spawns one
	// then), and every connection made is kept (the idle pool holds as many as
	// there may be workers): a connection closed because the pool was full, or
	// one per worker started at once, costs a TLS handshake, and at a few
	// thousand requests/s those handshakes, not the requests, used the CPU
	// (BenchmarkGenerator, docs/load.md).
	most := max(8, opts.Rate*int(max(opts.Timeout/time.Second, 1)))
	a := vegeta.NewAttacker(vegeta.Client(r.entry.Client(opts.Timeout, most)), vegeta.Workers(dialing),
		vegeta.MaxWorkers(uint64(most)))
	var count atomic.Uint64 // vegeta's workers call the targeter concurrently
	period := uint64(opts.Mix.Read + opts.Mix.Write)
	targeter := func(t *vegeta.Target) error {
		n := count.Add(1) - 1
		base := r.entry.URLs[n%uint64(len(r.entry.URLs))]
		if n%period < uint64(opts.Mix.Write) {
			*t = vegeta.Target{Method: http.MethodPost, URL: base + "/api/rows",
				Body: []byte(`{"body":"sitectl load"}`), Header: http.Header{"Content-Type": {"application/json"}}}
		} else {
			*t = vegeta.Target{Method: http.MethodGet, URL: base + "/api/rows?limit=1"}
		}
		return nil
	}
	results := a.Attack(targeter, vegeta.ConstantPacer{Freq: opts.Rate, Per: time.Second}, opts.Duration, r.entry.Site)
	for {
		select {
		case <-ctx.Done():
			a.Stop()
			for range results { //nolint:revive // drain what is in flight
			}
			return
		case res, ok := <-results:
			if !ok {
				return
			}
			r.add(res)
		}
	}
}

func (r *siteRun) add(res *vegeta.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// vegeta's Metrics keeps every distinct error text (a connection error names
	// its local port: one per failed request); sitectl counts error kinds itself.
	m := *res
	m.Error = ""
	r.metrics.Add(&m)
	r.buckets.add(res.Timestamp, res.Latency, res.Code >= 200 && res.Code < 300)
	if k := errorKind(res.Code, res.Error); k != "" {
		r.errors[k]++
	}
	if res.Code >= 200 && res.Code < 300 {
		if s := servedBy(res.Body); s != "" {
			r.served[s]++
		}
	}
}

// result is the figures so far; withBuckets adds the latency over time.
func (r *siteRun) result(withBuckets bool) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.metrics // a copy: Close computes the figures
	m.Close()
	out := Result{Site: r.entry.Site, Requests: m.Requests, Rate: m.Rate, Throughput: m.Throughput, Success: m.Success,
		P50: m.Latencies.P50, P90: m.Latencies.P90, P99: m.Latencies.P99, Max: m.Latencies.Max,
		Errors: map[string]int{}, ServedBy: map[string]int{}}
	for k, v := range r.errors {
		out.Errors[k] = v
	}
	for k, v := range r.served {
		out.ServedBy[k] = v
	}
	if withBuckets {
		out.BucketWidth, out.Buckets = r.buckets.width, r.buckets.summary()
	}
	return out
}

// errorKind names a failed request's kind ("" for a success).
func errorKind(code uint16, msg string) string {
	switch {
	case code >= 200 && code < 400:
		return ""
	case code != 0:
		return "http " + strconv.Itoa(int(code))
	case strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline exceeded"):
		return "timeout"
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case strings.Contains(msg, "connection reset"):
		return "connection reset"
	case strings.Contains(msg, "no route to host") || strings.Contains(msg, "unreachable"):
		return "unreachable"
	case strings.Contains(msg, "tls") || strings.Contains(msg, "certificate"):
		return "tls"
	case msg == "":
		return "no answer"
	}
	return "other"
}

// servedBy reads the "site" of an API answer (the site whose API served it).
func servedBy(body []byte) string {
	i := strings.Index(string(body), `"site": "`)
	j := len(`"site": "`)
	if i < 0 {
		i = strings.Index(string(body), `"site":"`)
		j = len(`"site":"`)
	}
	if i < 0 {
		return ""
	}
	rest := string(body[i+j:])
	if k := strings.IndexByte(rest, '"'); k >= 0 {
		return rest[:k]
	}
	return ""
}

// ErrKinds lists a result's error kinds, most frequent first.
func (r Result) ErrKinds() []string {
	var out []string
	for k := range r.Errors {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if r.Errors[out[i]] != r.Errors[out[j]] {
			return r.Errors[out[i]] > r.Errors[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// Reachable checks that every URL of e answers over TLS (any HTTP status), so an
// unreachable entry point is one clear error before the load starts.
func Reachable(ctx context.Context, e Entry) error {
	c := e.Client(5*time.Second, 1)
	var errs []error
	for _, u := range e.URLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"/api/health", nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("site %s: entry point %s is unreachable: %w", e.Site, u, err))
			continue
		}
		_ = resp.Body.Close()
	}
	return errors.Join(errs...)
}
