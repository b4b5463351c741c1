package main

// Table tests of the Kong stand-in, each case written from Kong's documentation
// (Kong Gateway 3.x: "Traditional router", "Load balancing", "Health checks and
// circuit breakers", and the plugin pages of correlation-id, ip-restriction,
// rate-limiting and request-transformer).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

const routerConf = `_format_version: "3.0"
services:
  - name: api
    host: api.local
    routes:
      - {name: api, paths: [/api], protocols: [https], strip_path: false, https_redirect_status_code: 308}
      - {name: api-v2, paths: [/api/v2], protocols: [http, https]}
      - {name: api-peer, paths: [/api], headers: {X-Sitectl-Via: [douala, yaounde]}, protocols: [http, https], strip_path: false}
  - name: other
    host: other.local
    routes:
      - {name: get-only, paths: [/get], methods: [GET]}
      - {name: plain-host, hosts: [shop.example.com], paths: [/shop]}
      - {name: wild-host, hosts: ["*.example.com"], paths: [/shop]}
      - {name: wild-tld, hosts: ["example.*"], paths: [/tld]}
      - {name: upgrade, paths: [/secure], protocols: [https]}
`

func TestKongRouter(t *testing.T) {
	c, err := parseKongConfig([]byte(routerConf))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := newRouter(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, host, path, proto string
		headers                         map[string]string
		route                           string // "" = no route
		wrongProto                      bool
		upstream                        string // path sent upstream
	}{
		// A plain path is a prefix; strip_path false keeps it.
		{name: "prefix", method: "GET", path: "/api/rows", proto: "https", route: "api", upstream: "/api/rows"},
		{name: "prefix is a string prefix", method: "GET", path: "/apix", proto: "https", route: "api", upstream: "/apix"},
		// The longest matching prefix wins; strip_path defaults to true.
		{name: "longest prefix, stripped", method: "GET", path: "/api/v2/rows", proto: "https", route: "api-v2", upstream: "/rows"},
		{name: "stripped to /", method: "GET", path: "/api/v2", proto: "https", route: "api-v2", upstream: "/"},
		// A route only for https, asked over http: the route's redirect code.
		{name: "https only over http", method: "GET", path: "/api/rows", proto: "http", route: "api", wrongProto: true, upstream: "/api/rows"},
		// A route with more matching fields (headers) wins over the same path without.
		{name: "headers win", method: "POST", path: "/api/rows", proto: "http", headers: map[string]string{"X-Sitectl-Via": "douala"}, route: "api-peer", upstream: "/api/rows"},
		{name: "header values fold case", method: "GET", path: "/api/rows", proto: "https", headers: map[string]string{"x-sitectl-via": "YAOUNDE"}, route: "api-peer", upstream: "/api/rows"},
		{name: "header value not listed", method: "GET", path: "/api/rows", proto: "https", headers: map[string]string{"X-Sitectl-Via": "cloud"}, route: "api", upstream: "/api/rows"},
		// Methods: every configured field must match.
		{name: "method matches", method: "GET", path: "/get/x", proto: "http", route: "get-only", upstream: "/x"},
		{name: "method does not", method: "POST", path: "/get/x", proto: "http"},
		// Hosts: plain over wildcard; wildcards on the leftmost or rightmost label.
		{name: "plain host", method: "GET", host: "shop.example.com", path: "/shop", proto: "http", route: "plain-host", upstream: "/"},
		{name: "plain host with port", method: "GET", host: "shop.example.com:8000", path: "/shop", proto: "http", route: "plain-host", upstream: "/"},
		{name: "wildcard host", method: "GET", host: "a.b.example.com", path: "/shop", proto: "http", route: "wild-host", upstream: "/"},
		{name: "wildcard tld", method: "GET", host: "example.org", path: "/tld/1", proto: "http", route: "wild-tld", upstream: "/1"},
		{name: "host not listed", method: "GET", host: "example.com", path: "/shop", proto: "http"},
		// Defaults: 426 when https_redirect_status_code is unset.
		{name: "426 default", method: "GET", path: "/secure", proto: "http", route: "upgrade", wrongProto: true, upstream: "/"},
		{name: "no route", method: "GET", path: "/nothing", proto: "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://gw"+tc.path, nil)
			if tc.host != "" {
				r.Host = tc.host
			}
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			m, ok := rt.match(r, tc.proto)
			if tc.route == "" {
				if ok {
					t.Fatalf("matched %s, want no route", m.route.Name)
				}
				return
			}
			if !ok || m.route.Name != tc.route {
				got := "none"
				if ok {
					got = m.route.Name
				}
				t.Fatalf("route %s, want %s", got, tc.route)
			}
			if m.wrongProtocol != tc.wrongProto {
				t.Errorf("wrong protocol %v, want %v", m.wrongProtocol, tc.wrongProto)
			}
			if got := upstreamPath(m, tc.path, ""); got != tc.upstream {
				t.Errorf("upstream path %s, want %s", got, tc.upstream)
			}
		})
	}
}

// upstreamOf builds a balancer of targets "ip:port" with weights.
func upstreamOf(threshold float64, targets map[string]int) *balancer {
	u := kongUpstream{Name: "u", Healthchecks: kongHealthchecks{Threshold: threshold}}
	for _, t := range sortedKeys(targets) {
		w := targets[t]
		u.Targets = append(u.Targets, kongTarget{Target: t, Weight: &w})
	}
	b := newBalancer(u, nil)
	b.resolve(context.Background())
	return b
}

func sortedKeys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestKongBalancer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		targets   map[string]int
		unhealthy []string
		threshold float64
		picks     int
		want      map[string]int // picks per address; empty: no peer (503)
	}{
		// Weighted round-robin: picks in proportion to the weights.
		{name: "weights 3:1", targets: map[string]int{"10.0.0.1:80": 300, "10.0.0.2:80": 100}, picks: 400, want: map[string]int{"10.0.0.1:80": 300, "10.0.0.2:80": 100}},
		// sitectl's failover: the local target far above the peer.
		{name: "local outweighs peer", targets: map[string]int{"10.0.0.1:8000": 10000, "10.30.0.11:80": 1}, picks: 10001, want: map[string]int{"10.0.0.1:8000": 10000, "10.30.0.11:80": 1}},
		// An unhealthy address is skipped: everything goes to what is left.
		{name: "unhealthy local skipped", targets: map[string]int{"10.0.0.1:8000": 10000, "10.30.0.11:80": 1}, unhealthy: []string{"10.0.0.1:8000"}, picks: 50, want: map[string]int{"10.30.0.11:80": 50}},
		// Weight 0 disables a target.
		{name: "weight 0", targets: map[string]int{"10.0.0.1:80": 100, "10.0.0.2:80": 0}, picks: 10, want: map[string]int{"10.0.0.1:80": 10}},
		// Nothing healthy: no peer (Kong: 503 failure to get a peer from the ring-balancer).
		{name: "all unhealthy", targets: map[string]int{"10.0.0.1:80": 100}, unhealthy: []string{"10.0.0.1:80"}, picks: 1, want: map[string]int{}},
		// threshold: below that share of healthy weight the upstream is unhealthy.
		{name: "threshold", targets: map[string]int{"10.0.0.1:80": 100, "10.0.0.2:80": 100}, unhealthy: []string{"10.0.0.1:80"}, threshold: 60, picks: 1, want: map[string]int{}},
		{name: "threshold met", targets: map[string]int{"10.0.0.1:80": 100, "10.0.0.2:80": 100}, unhealthy: []string{"10.0.0.1:80"}, threshold: 50, picks: 2, want: map[string]int{"10.0.0.2:80": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := upstreamOf(tc.threshold, tc.targets)
			for _, a := range tc.unhealthy {
				b.addrs[a].healthy = false
			}
			got := map[string]int{}
			for i := 0; i < tc.picks; i++ {
				if a, ok := b.pick(nil); ok {
					got[a]++
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("picks %v, want %v", got, tc.want)
			}
			for a, n := range tc.want {
				if got[a] != n {
					t.Errorf("picks %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestKongHealthCounters(t *testing.T) {
	healthy := kongCounters{HTTPStatuses: []int{200}, Successes: 2}
	unhealthy := kongCounters{HTTPStatuses: []int{500, 503}, HTTPFailures: 3, TCPFailures: 2, Timeouts: 3}
	S, H, T, O, N := outSuccess, outHTTPFailure, outTCPFailure, outTimeout, outNeutral
	for _, tc := range []struct {
		name     string
		seq      []outcome
		want     []bool // healthy after each outcome
		disabled bool   // unhealthy.http_failures 0
	}{
		{name: "three http failures", seq: []outcome{H, H, H}, want: []bool{true, true, false}},
		{name: "a success resets the failures", seq: []outcome{H, H, S, H, H}, want: []bool{true, true, true, true, true}},
		{name: "two tcp failures", seq: []outcome{T, T}, want: []bool{true, false}},
		{name: "kinds count apart", seq: []outcome{H, T, H, O, O}, want: []bool{true, true, true, true, true}},
		{name: "three timeouts", seq: []outcome{O, O, O}, want: []bool{true, true, false}},
		{name: "back after two successes", seq: []outcome{T, T, S, S}, want: []bool{true, false, false, true}},
		{name: "a failure resets the successes", seq: []outcome{T, T, S, H, S, S}, want: []bool{true, false, false, false, false, true}},
		{name: "statuses in neither list do not count", seq: []outcome{H, N, H, N, H}, want: []bool{true, true, true, true, false}},
		{name: "a count of 0 never flips", seq: []outcome{H, H, H, H}, want: []bool{true, true, true, true}, disabled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := upstreamOf(0, map[string]int{"10.0.0.1:80": 100})
			u := unhealthy
			if tc.disabled {
				u.HTTPFailures = 0
			}
			for i, o := range tc.seq {
				b.report("10.0.0.1:80", o, healthy, u)
				if got := b.snapshot()[0].Healthy; got != tc.want[i] {
					t.Fatalf("after outcome %d (%v): healthy %v, want %v", i, o, got, tc.want[i])
				}
			}
		})
	}
	// classify: statuses from the lists, errors by kind.
	for _, tc := range []struct {
		status int
		want   outcome
	}{{200, S}, {503, H}, {404, N}} {
		if got := classify(tc.status, nil, healthy, unhealthy); got != tc.want {
			t.Errorf("classify(%d) = %v, want %v", tc.status, got, tc.want)
		}
	}
	if got := classify(0, context.DeadlineExceeded, healthy, unhealthy); got != O {
		t.Errorf("classify(deadline) = %v, want timeout", got)
	}
}

func TestKongPlugins(t *testing.T) {
	minute := kongPlugin{Name: "rate-limiting", Config: map[string]any{"minute": 2, "policy": "local", "limit_by": "ip"}}
	corr := kongPlugin{Name: "correlation-id", Config: map[string]any{"header_name": "X-Request-ID", "generator": "uuid#counter", "echo_downstream": true}}
	allow := kongPlugin{Name: "ip-restriction", Config: map[string]any{"allow": []any{"10.10.0.11", "10.20.0.0/24"}, "status": 403}}
	transform := kongPlugin{Name: "request-transformer", Config: map[string]any{
		"remove": map[string]any{"headers": []any{"X-Sitectl-Via"}}, "add": map[string]any{"headers": []any{"X-Sitectl-Via:douala"}}}}
	for _, tc := range []struct {
		name    string
		plugins []kongPlugin
		ips     []string // one request per ip, in order
		header  map[string]string
		status  []int // 0 = passed on
		check   func(t *testing.T, r *http.Request, out http.Header)
	}{
		// rate-limiting: the third request of a minute from one IP is refused; IPs count apart.
		{name: "rate limit per ip", plugins: []kongPlugin{minute}, ips: []string{"1.1.1.1", "1.1.1.1", "2.2.2.2", "1.1.1.1"}, status: []int{0, 0, 0, 429}},
		// ip-restriction: allow lists addresses and CIDRs.
		{name: "ip allow", plugins: []kongPlugin{allow}, ips: []string{"10.10.0.11", "10.20.0.7", "10.10.0.12"}, status: []int{0, 0, 403}},
		// correlation-id: a request without the header gets one, echoed downstream.
		{name: "correlation id minted", plugins: []kongPlugin{corr}, ips: []string{"1.1.1.1"}, status: []int{0},
			check: func(t *testing.T, r *http.Request, out http.Header) {
				if id := r.Header.Get("X-Request-ID"); !strings.Contains(id, "#1") || out.Get("X-Request-ID") != id {
					t.Errorf("request id %q, echoed %q", id, out.Get("X-Request-ID"))
				}
			}},
		{name: "correlation id kept", plugins: []kongPlugin{corr}, ips: []string{"1.1.1.1"}, header: map[string]string{"X-Request-ID": "abc"}, status: []int{0},
			check: func(t *testing.T, r *http.Request, out http.Header) {
				if r.Header.Get("X-Request-ID") != "abc" || out.Get("X-Request-ID") != "abc" {
					t.Errorf("request id %q, echoed %q, want abc", r.Header.Get("X-Request-ID"), out.Get("X-Request-ID"))
				}
			}},
		// request-transformer: remove then add, so a client cannot choose the value.
		{name: "transformer", plugins: []kongPlugin{transform}, ips: []string{"1.1.1.1"}, header: map[string]string{"X-Sitectl-Via": "cloud"}, status: []int{0},
			check: func(t *testing.T, r *http.Request, _ http.Header) {
				if v := r.Header.Values("X-Sitectl-Via"); len(v) != 1 || v[0] != "douala" {
					t.Errorf("X-Sitectl-Via %v, want [douala]", v)
				}
			}},
		// Priority: ip-restriction runs before rate-limiting (a refused IP is not counted).
		{name: "ip restriction first", plugins: []kongPlugin{minute, allow}, ips: []string{"9.9.9.9", "9.9.9.9", "9.9.9.9"}, status: []int{403, 403, 403}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPlugins()
			p.now = func() time.Time { return time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC) }
			for i, ip := range tc.ips {
				r := httptest.NewRequest("GET", "http://gw/api", nil)
				for k, v := range tc.header {
					r.Header.Set(k, v)
				}
				out := http.Header{}
				res := p.access(tc.plugins, "api", r, ip, out)
				got := 0
				if res != nil {
					got = res.status
				}
				if got != tc.status[i] {
					t.Fatalf("request %d from %s: status %d, want %d", i, ip, got, tc.status[i])
				}
				if tc.check != nil {
					tc.check(t, r, out)
				}
			}
		})
	}
}

// renderKong renders the kong.yml sitectl generates for site in the lab-shaped
// environment.
func renderKong(t *testing.T, site string) string {
	t.Helper()
	topo := stacktest.Load(t, "lab")
	r, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site(site)})
	if err != nil {
		t.Fatal(err)
	}
	return string(r.Files["kong.yml"])
}

// apiServer is a django-api stand-in for the proxy tests: while notReady is set
// (its database down) /api/ready and every /api path answer 503; every answer
// names its site.
func apiServer(t *testing.T, site string, notReady *atomic.Bool, seen *atomic.Value) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen.Store(r.Header.Get(kong.ViaHeader))
		}
		if notReady != nil && notReady.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"site": site, "path": r.URL.Path})
	}))
	t.Cleanup(s.Close)
	return s
}

// TestKongFailover runs douala's generated kong.yml (targets moved to test
// servers, probe intervals shortened): /api goes to douala's API while it is
// ready, to the peer (cloud's Kong) with X-Sitectl-Via while it is not, and back
// after recovery; a plain-HTTP /api request is redirected.
func TestKongFailover(t *testing.T) {
	var notReady atomic.Bool
	var seenAtPeer atomic.Value
	local := apiServer(t, "douala", &notReady, nil)
	peer := apiServer(t, "cloud", nil, &seenAtPeer)
	conf := renderKong(t, "douala")
	conf = strings.ReplaceAll(conf, "django-api_api:8000", strings.TrimPrefix(local.URL, "http://"))
	conf = strings.ReplaceAll(conf, "10.30.0.11:80", strings.TrimPrefix(peer.URL, "http://"))
	c, err := parseKongConfig([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Upstreams {
		c.Upstreams[i].Healthchecks.Active.Healthy.Interval = 0.05
		c.Upstreams[i].Healthchecks.Active.Unhealthy.Interval = 0.05
	}
	p, err := newKongProxy(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p.start(ctx)
	gw := httptest.NewServer(p.handler(true))
	t.Cleanup(gw.Close)
	plain := httptest.NewServer(p.handler(false))
	t.Cleanup(plain.Close)

	siteOf := func() (string, int) {
		resp, err := http.Get(gw.URL + "/api/rows")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return body["site"], resp.StatusCode
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, _ := siteOf()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/api still served by %q, want %s", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Ready: douala serves (the peer's weight is 1 in 10001: none of 200 requests).
	for i := 0; i < 200; i++ {
		if site, code := siteOf(); site != "douala" || code != 200 {
			t.Fatalf("request %d: served by %q (%d), want douala", i, site, code)
		}
	}
	notReady.Store(true)
	waitFor("cloud")
	if v, _ := seenAtPeer.Load().(string); v != "douala" {
		t.Errorf("the peer saw %s %q, want douala", kong.ViaHeader, v)
	}
	for i := 0; i < 50; i++ {
		if site, code := siteOf(); site != "cloud" || code != 200 {
			t.Fatalf("failed over, request %d: served by %q (%d), want cloud", i, site, code)
		}
	}
	notReady.Store(false)
	waitFor("douala")

	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(plain.URL + "/api/rows")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("plain HTTP /api: %d %s, want a 308 to https", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestKongPeerRoute runs cloud's generated kong.yml: a failover request (the via
// header, plain HTTP over the tunnel) from a peer Kong node reaches cloud's own
// API only; from anywhere else it is refused (ip-restriction).
func TestKongPeerRoute(t *testing.T) {
	api := apiServer(t, "cloud", nil, nil)
	conf := strings.ReplaceAll(renderKong(t, "cloud"), "django-api_api:8000", strings.TrimPrefix(api.URL, "http://"))
	c, err := parseKongConfig([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newKongProxy(c)
	if err != nil {
		t.Fatal(err)
	}
	p.start(t.Context())
	h := p.handler(false)
	for _, tc := range []struct {
		name, from, via string
		want            int
	}{
		{"from douala's Kong node", "10.10.0.11", "douala", 200},
		{"from yaounde's Kong node", "10.20.0.11", "yaounde", 200},
		{"from elsewhere", "203.0.113.9", "douala", 403},
		{"no via header: the https-only /api redirects", "10.10.0.11", "", 308},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://cloud/api/rows", nil)
			r.RemoteAddr = tc.from + ":40000"
			if tc.via != "" {
				r.Header.Set(kong.ViaHeader, tc.via)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if tc.want == 200 && !strings.Contains(w.Body.String(), `"site":"cloud"`) {
				t.Errorf("body %s, want cloud's API", w.Body)
			}
		})
	}
}

// TestKongClientAbort: a client that gives up while the upstream is still
// answering (nginx's 499) is neither retried on another target nor counted by
// the passive health checks against the target (Kong's log phase reports 499,
// in no health-check list): two targets, one TCP failure makes a target
// unhealthy, and after three aborted requests both are healthy and only one
// target saw each request.
func TestKongClientAbort(t *testing.T) {
	var hits atomic.Int64
	slow := func() *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := slow(), slow()
	conf := fmt.Sprintf(`_format_version: "3.0"
services:
  - name: api
    host: api.up
    routes: [{name: api, paths: [/api], strip_path: false}]
upstreams:
  - name: api.up
    healthchecks:
      passive:
        unhealthy: {tcp_failures: 1, timeouts: 1, http_failures: 1, http_statuses: [500]}
    targets:
      - {target: %q, weight: 100}
      - {target: %q, weight: 100}
`, strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://"))
	c, err := parseKongConfig([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newKongProxy(c)
	if err != nil {
		t.Fatal(err)
	}
	bal := p.balancers["api.up"]
	bal.resolve(context.Background())
	h := p.handler(false)
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "http://gw/api/rows", nil).WithContext(ctx))
		cancel()
		if w.Code != statusClientClosed {
			t.Errorf("aborted request %d: status %d, want %d", i, w.Code, statusClientClosed)
		}
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("the targets saw %d requests for 3 aborted ones, want 3 (no retry)", n)
	}
	for _, st := range bal.snapshot() {
		if !st.Healthy {
			t.Errorf("target %s unhealthy after client aborts, want healthy: %+v", st.Address, st)
		}
	}
}
