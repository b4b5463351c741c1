package main

// The Kong stand-in's proxy: with KONG_DECLARATIVE_CONFIG set, the kong stand-in
// routes as DB-less Kong would with that file (kongconf.go, kongroute.go,
// kongbalancer.go, kongplugins.go) on KONG_PROXY_LISTEN (plain and "ssl"
// listeners, the certificate from KONG_SSL_CERT/KONG_SSL_CERT_KEY) and answers
// /status, /metrics and /upstreams/<name>/health on KONG_STATUS_LISTEN. It is
// still a stand-in: every answer carries X-Sitectl-Standin: kong.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// statusClientClosed is nginx's status for a request whose client closed the
// connection before the answer.
const statusClientClosed = 499

type kongProxy struct {
	conf      *kongConfig
	router    *router
	balancers map[string]*balancer // by upstream name
	plugins   *plugins
	transport *http.Transport

	mu       sync.Mutex
	requests map[string]int // prometheus: service|route|code → count
}

func newKongProxy(c *kongConfig) (*kongProxy, error) {
	rt, err := newRouter(c)
	if err != nil {
		return nil, err
	}
	check := func(list []kongPlugin, where string) error {
		for _, p := range list {
			if !knownPlugins[p.Name] {
				return fmt.Errorf("%s: plugin %q is not one this stand-in implements", where, p.Name)
			}
		}
		return nil
	}
	if err := check(c.Plugins, "global plugins"); err != nil {
		return nil, err
	}
	p := &kongProxy{conf: c, router: rt, balancers: map[string]*balancer{}, plugins: newPlugins(), requests: map[string]int{},
		transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a stand-in: it does not verify upstream certificates (tls_verify), docs/gateway.md
	for _, s := range c.Services {
		if err := check(s.Plugins, "service "+s.Name); err != nil {
			return nil, err
		}
		for _, r := range s.Routes {
			if err := check(r.Plugins, "route "+r.Name); err != nil {
				return nil, err
			}
		}
	}
	roots, err := trustedRoots(os.Getenv("KONG_LUA_SSL_TRUSTED_CERTIFICATE"))
	if err != nil {
		return nil, err
	}
	for _, u := range c.Upstreams {
		b := newBalancer(u, nil)
		b.roots = roots
		p.balancers[u.Name] = b
	}
	return p, nil
}

// start resolves every upstream's targets and runs its health checks until ctx ends.
func (p *kongProxy) start(ctx context.Context) {
	for _, b := range p.balancers {
		b.resolve(ctx)
		go b.run(ctx, 5*time.Second)
	}
}

// kongError writes Kong's JSON error body.
func kongError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// handler serves a proxy listener; tlsListener says whether it is an "ssl" one.
func (p *kongProxy) handler(tlsListener bool) http.Handler {
	proto := "http"
	if tlsListener {
		proto = "https"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("X-Sitectl-Standin", "kong")
		w.Header().Set("Via", "kong/3.6-standin")
		m, ok := p.router.match(r, proto)
		if !ok {
			kongError(w, http.StatusNotFound, "no Route matched with those values")
			p.count("", "", http.StatusNotFound)
			return
		}
		svc := m.route.service
		if m.wrongProtocol {
			code := m.route.HTTPSRedirectStatusCode
			if code == http.StatusUpgradeRequired {
				w.Header().Set("Connection", "Upgrade")
				w.Header().Set("Upgrade", "TLS/1.2, HTTP/1.1")
				kongError(w, code, "Please use HTTPS protocol")
			} else {
				http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), code)
			}
			p.count(svc.Name, m.route.Name, code)
			return
		}
		clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
		list := append(append(append([]kongPlugin(nil), p.conf.Plugins...), svc.Plugins...), m.route.Plugins...)
		if res := p.plugins.access(list, svc.Name, r, clientIP, w.Header()); res != nil {
			for k, v := range res.headers {
				w.Header()[k] = v
			}
			kongError(w, res.status, res.message)
			p.count(svc.Name, m.route.Name, res.status)
			return
		}
		status := p.forward(w, r, m, proto, clientIP, start)
		p.count(svc.Name, m.route.Name, status)
	})
}

// forward sends the request upstream, retrying another address on a connection
// failure or timeout up to the service's retries, and returns the status sent.
func (p *kongProxy) forward(w http.ResponseWriter, r *http.Request, m routeMatch, proto, clientIP string, start time.Time) int {
	svc := m.route.service
	body, err := io.ReadAll(r.Body)
	if err != nil {
		kongError(w, http.StatusBadRequest, "cannot read the request body")
		return http.StatusBadRequest
	}
	b := p.balancers[svc.Host]
	tried := map[string]bool{}
	var lastErr error
	for attempt := 0; attempt <= *svc.Retries; attempt++ {
		addr := net.JoinHostPort(svc.Host, fmt.Sprint(svc.Port))
		if b != nil {
			a, ok := b.pick(tried)
			if !ok {
				if attempt == 0 {
					kongError(w, http.StatusServiceUnavailable, "failure to get a peer from the ring-balancer")
					return http.StatusServiceUnavailable
				}
				break
			}
			addr = a
		}
		tried[addr] = true
		resp, err := p.roundTrip(r, m, body, addr, proto, clientIP)
		if err != nil && r.Context().Err() != nil {
			// The client went away (nginx: 499). Kong neither tries the next
			// target nor counts it against this one: its log phase reports
			// the status 499, which no health-check list holds.
			w.WriteHeader(statusClientClosed)
			return statusClientClosed
		}
		if b != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			b.passive(addr, status, err)
		}
		if err != nil {
			lastErr = err
			continue
		}
		defer func() { _ = resp.Body.Close() }()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Set("X-Kong-Upstream-Latency", fmt.Sprint(time.Since(start).Milliseconds()))
		w.Header().Set("X-Kong-Proxy-Latency", "0")
		w.Header().Set("X-Sitectl-Upstream", addr)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		return resp.StatusCode
	}
	var ne net.Error
	if errors.As(lastErr, &ne) && ne.Timeout() {
		kongError(w, http.StatusGatewayTimeout, "The upstream server is timing out")
		return http.StatusGatewayTimeout
	}
	kongError(w, http.StatusBadGateway, "An invalid response was received from the upstream server")
	return http.StatusBadGateway
}

func (p *kongProxy) roundTrip(r *http.Request, m routeMatch, body []byte, addr, proto, clientIP string) (*http.Response, error) {
	svc := m.route.service
	scheme := "http"
	if svc.Protocol == "https" {
		scheme = "https"
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(svc.ConnectTimeout+svc.ReadTimeout)*time.Millisecond)
	u := scheme + "://" + addr + upstreamPath(m, r.URL.Path, svc.Path)
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	out.Header = r.Header.Clone()
	out.Host = svc.Host
	if m.route.PreserveHost {
		out.Host = r.Host
	}
	if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
		out.Header.Set("X-Forwarded-For", prior+", "+clientIP)
	} else {
		out.Header.Set("X-Forwarded-For", clientIP)
	}
	out.Header.Set("X-Real-IP", clientIP)
	out.Header.Set("X-Forwarded-Proto", proto)
	out.Header.Set("X-Forwarded-Host", strings.Split(r.Host, ":")[0])
	out.Header.Set("X-Forwarded-Path", r.URL.Path)
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }

func (p *kongProxy) count(service, route string, code int) {
	p.mu.Lock()
	p.requests[fmt.Sprintf("%s|%s|%d", service, route, code)]++
	p.mu.Unlock()
}

// statusHandler serves the status listener: /status, /metrics (Prometheus text,
// the prometheus plugin's main series) and /upstreams/<name>/health.
func (p *kongProxy) statusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Sitectl-Standin", "kong")
		switch {
		case r.URL.Path == "/metrics":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			p.mu.Lock()
			keys := make([]string, 0, len(p.requests))
			for k := range p.requests {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintln(w, "# TYPE kong_http_requests_total counter")
			for _, k := range keys {
				f := strings.SplitN(k, "|", 3)
				fmt.Fprintf(w, "kong_http_requests_total{service=%q,route=%q,code=%q,source=\"service\"} %d\n", f[0], f[1], f[2], p.requests[k])
			}
			p.mu.Unlock()
			fmt.Fprintln(w, "# TYPE kong_upstream_target_health gauge")
			for _, name := range p.upstreamNames() {
				for _, st := range p.balancers[name].snapshot() {
					h := 0
					if st.Healthy {
						h = 1
					}
					fmt.Fprintf(w, "kong_upstream_target_health{upstream=%q,target=%q,address=%q,state=\"healthy\"} %d\n", name, st.Target, st.Address, h)
				}
			}
		case strings.HasPrefix(r.URL.Path, "/upstreams/") && strings.HasSuffix(r.URL.Path, "/health"):
			name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/upstreams/"), "/health")
			b := p.balancers[name]
			if b == nil {
				kongError(w, http.StatusNotFound, "Not found")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"data": b.snapshot()})
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"database": map[string]any{"reachable": true},
				"server": map[string]any{"connections_active": 1}, "standin": true,
				"note": "sitectl lab stand-in for Kong: routes kong.yml; NOT Kong"})
		}
	})
}

func (p *kongProxy) upstreamNames() []string {
	out := make([]string, 0, len(p.balancers))
	for n := range p.balancers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// kongListen parses a KONG_*_LISTEN value ("0.0.0.0:8000, 0.0.0.0:8443 ssl http2").
func kongListen(v string) (plain, ssl []string) {
	for _, f := range strings.Split(v, ",") {
		parts := strings.Fields(f)
		if len(parts) == 0 || parts[0] == "off" {
			continue
		}
		isSSL := false
		for _, o := range parts[1:] {
			if o == "ssl" {
				isSSL = true
			}
		}
		if isSSL {
			ssl = append(ssl, parts[0])
		} else {
			plain = append(plain, parts[0])
		}
	}
	return plain, ssl
}

// serveKong runs the routing stand-in from the KONG_* environment.
func serveKong(confPath string) error {
	c, err := loadKongConfig(confPath)
	if err != nil {
		return err
	}
	p, err := newKongProxy(c)
	if err != nil {
		return fmt.Errorf("%s: %w", confPath, err)
	}
	host, _ := os.Hostname()
	log.SetFlags(log.LstdFlags | log.LUTC)
	log.Printf("sitectl lab stand-in for kong 3.6 on %s: routes %s (%d services, %d upstreams); NOT Kong", host, confPath, len(c.Services), len(c.Upstreams))
	p.start(context.Background())
	listen := os.Getenv("KONG_PROXY_LISTEN")
	if listen == "" {
		listen = "0.0.0.0:8000, 0.0.0.0:8443 ssl"
	}
	plain, ssl := kongListen(listen)
	statusPlain, _ := kongListen(os.Getenv("KONG_STATUS_LISTEN"))
	errc := make(chan error, 8)
	serve := func(addr string, h http.Handler, cfg *tls.Config) {
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: cfg}
		go func() {
			if cfg != nil {
				errc <- srv.ListenAndServeTLS("", "")
				return
			}
			errc <- srv.ListenAndServe()
		}()
		log.Printf("listening on %s (tls %v)", addr, cfg != nil)
	}
	for _, a := range plain {
		serve(a, p.handler(false), nil)
	}
	if len(ssl) > 0 {
		cert, err := tls.LoadX509KeyPair(os.Getenv("KONG_SSL_CERT"), os.Getenv("KONG_SSL_CERT_KEY"))
		if err != nil {
			return fmt.Errorf("KONG_SSL_CERT/KONG_SSL_CERT_KEY: %w", err)
		}
		for _, a := range ssl {
			serve(a, p.handler(true), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		}
	}
	for _, a := range statusPlain {
		serve(a, p.statusHandler(), nil)
	}
	return <-errc
}
