package main

// The Kong stand-in's upstreams, modelled on Kong's load balancing and health
// checks (Kong Gateway docs, "Load balancing" and "Health checks and circuit
// breakers"):
//   - a target is host:port with a weight (0 disables it); a hostname target is
//     resolved, and every address it resolves to gets the target's full weight;
//   - round-robin is weighted (here nginx's smooth weighted round-robin; Kong uses
//     a shuffled wheel of the same proportions) over the healthy addresses only;
//   - every address starts healthy. A success (a status in healthy.http_statuses)
//     resets the failure counters and a failure (a status in
//     unhealthy.http_statuses, a TCP failure, a timeout) resets the success counter;
//     unhealthy.http_failures / tcp_failures / timeouts consecutive failures of one
//     kind make it unhealthy, healthy.successes successes make it healthy again; a
//     count of 0 never flips it, and statuses in neither list do not count;
//   - active checks probe http_path (with active.headers) every healthy.interval
//     seconds while healthy and every unhealthy.interval while unhealthy (0: not
//     probed in that state); passive checks count proxied responses;
//   - threshold: when the healthy share of the weight falls below it (percent),
//     the whole upstream is unhealthy.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

// outcome is what one request or probe did, for the counters.
type outcome int

const (
	outSuccess outcome = iota
	outHTTPFailure
	outTCPFailure
	outTimeout
	outNeutral // a status in neither list
)

type address struct {
	target  string // the target as written (host:port)
	addr    string // ip:port
	weight  int
	healthy bool
	// consecutive counts since the last outcome of another kind
	successes, httpFailures, tcpFailures, timeouts int
	current                                        int // smooth WRR state
}

type balancer struct {
	up       kongUpstream
	resolver func(ctx context.Context, host string) ([]string, error)
	// roots verify targets' certificates in HTTPS health checks (trustedRoots);
	// nil is the system store.
	roots *x509.CertPool

	mu    sync.Mutex
	addrs map[string]*address // by ip:port
	order []string
}

func newBalancer(up kongUpstream, resolver func(ctx context.Context, host string) ([]string, error)) *balancer {
	if resolver == nil {
		resolver = net.DefaultResolver.LookupHost
	}
	return &balancer{up: up, resolver: resolver, addrs: map[string]*address{}}
}

// resolve refreshes the addresses of every target, keeping the health of
// addresses that stay.
func (b *balancer) resolve(ctx context.Context) {
	next := map[string]*address{}
	var order []string
	for _, t := range b.up.Targets {
		host, port, err := net.SplitHostPort(t.Target)
		if err != nil {
			host, port = t.Target, "8000"
		}
		ips := []string{host}
		if net.ParseIP(host) == nil {
			if got, err := b.resolver(ctx, host); err == nil {
				ips = got
			} else {
				ips = nil // unresolvable: no address (Kong: the target has none)
			}
		}
		sort.Strings(ips)
		for _, ip := range ips {
			a := net.JoinHostPort(ip, port)
			b.mu.Lock()
			old := b.addrs[a]
			b.mu.Unlock()
			if old == nil {
				old = &address{target: t.Target, addr: a, healthy: true}
			}
			old.weight = *t.Weight
			next[a] = old
			order = append(order, a)
		}
	}
	b.mu.Lock()
	b.addrs, b.order = next, order
	b.mu.Unlock()
}

// pick chooses the next healthy address, skipping those in tried; ok is false
// when none is left (Kong answers 503).
func (b *balancer) pick(tried map[string]bool) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	total, healthyW := 0, 0
	for _, a := range b.order {
		x := b.addrs[a]
		total += x.weight
		if x.healthy {
			healthyW += x.weight
		}
	}
	if t := b.up.Healthchecks.Threshold; t > 0 && total > 0 && float64(healthyW)*100/float64(total) < t {
		return "", false
	}
	var best *address
	sum := 0
	for _, a := range b.order {
		x := b.addrs[a]
		if !x.healthy || x.weight <= 0 || tried[a] {
			continue
		}
		x.current += x.weight
		sum += x.weight
		if best == nil || x.current > best.current {
			best = x
		}
	}
	if best == nil {
		return "", false
	}
	best.current -= sum
	return best.addr, true
}

// report counts an outcome for addr against the counters c (active or passive).
func (b *balancer) report(addr string, o outcome, healthy, unhealthy kongCounters) {
	b.mu.Lock()
	defer b.mu.Unlock()
	x := b.addrs[addr]
	if x == nil {
		return
	}
	switch o {
	case outSuccess:
		x.httpFailures, x.tcpFailures, x.timeouts = 0, 0, 0
		x.successes++
		if !x.healthy && healthy.Successes > 0 && x.successes >= healthy.Successes {
			x.healthy, x.successes = true, 0
		}
		return
	case outHTTPFailure:
		x.successes = 0
		x.httpFailures++
	case outTCPFailure:
		x.successes = 0
		x.tcpFailures++
	case outTimeout:
		x.successes = 0
		x.timeouts++
	default:
		return
	}
	if x.healthy && (flips(x.httpFailures, unhealthy.HTTPFailures) || flips(x.tcpFailures, unhealthy.TCPFailures) || flips(x.timeouts, unhealthy.Timeouts)) {
		x.healthy = false
		x.httpFailures, x.tcpFailures, x.timeouts = 0, 0, 0
	}
}

func flips(n, limit int) bool { return limit > 0 && n >= limit }

// classify maps a response status (or a transport error) to an outcome.
func classify(status int, err error, healthy, unhealthy kongCounters) outcome {
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			return outTimeout
		}
		return outTCPFailure
	}
	for _, s := range unhealthy.HTTPStatuses {
		if s == status {
			return outHTTPFailure
		}
	}
	for _, s := range healthy.HTTPStatuses {
		if s == status {
			return outSuccess
		}
	}
	return outNeutral
}

// passive counts a proxied response.
func (b *balancer) passive(addr string, status int, err error) {
	p := b.up.Healthchecks.Passive
	if p.Type == "" {
		return
	}
	b.report(addr, classify(status, err, p.Healthy, p.Unhealthy), p.Healthy, p.Unhealthy)
}

// probe runs one active check of addr.
func (b *balancer) probe(ctx context.Context, addr string) {
	a := b.up.Healthchecks.Active
	scheme := "http"
	if a.Type == "https" {
		scheme = "https"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.Timeout*float64(time.Second)))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+a.HTTPPath, nil)
	if err != nil {
		return
	}
	for k, vs := range a.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: !a.HTTPSVerifyCertificate, RootCAs: b.roots}, //nolint:gosec // Kong's https_verify_certificate: false
		DisableKeepAlives: true}}
	status := 0
	resp, err := client.Do(req)
	if err == nil {
		status = resp.StatusCode
		_ = resp.Body.Close()
	}
	b.report(addr, classify(status, err, a.Healthy, a.Unhealthy), a.Healthy, a.Unhealthy)
}

// run resolves the targets every resolveEvery and probes each address at its
// state's interval, until ctx ends.
func (b *balancer) run(ctx context.Context, resolveEvery time.Duration) {
	b.resolve(ctx)
	a := b.up.Healthchecks.Active
	tick := 250 * time.Millisecond
	lastProbe := map[string]time.Time{}
	lastResolve := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.Sub(lastResolve) >= resolveEvery {
				b.resolve(ctx)
				lastResolve = now
			}
			if a.Type == "" || a.Type == "tcp" {
				continue
			}
			for _, st := range b.snapshot() {
				iv := a.Healthy.Interval
				if !st.Healthy {
					iv = a.Unhealthy.Interval
				}
				if iv <= 0 || now.Sub(lastProbe[st.Address]) < time.Duration(iv*float64(time.Second)) {
					continue
				}
				lastProbe[st.Address] = now
				go b.probe(ctx, st.Address)
			}
		}
	}
}

// addrState is one address's health, for the status endpoint and tests.
type addrState struct {
	Target  string `json:"target"`
	Address string `json:"address"`
	Weight  int    `json:"weight"`
	Healthy bool   `json:"healthy"`
}

func (b *balancer) snapshot() []addrState {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]addrState, 0, len(b.order))
	for _, a := range b.order {
		x := b.addrs[a]
		out = append(out, addrState{Target: x.target, Address: x.addr, Weight: x.weight, Healthy: x.healthy})
	}
	return out
}

func (s addrState) String() string {
	return fmt.Sprintf("%s(%s) w=%s healthy=%v", s.Target, s.Address, strconv.Itoa(s.Weight), s.Healthy)
}
