package main

// The Kong plugins sitectl configures, as the stand-in models them (Kong Gateway
// plugin docs): correlation-id, ip-restriction, rate-limiting (policy local, per
// minute/second/hour, limit_by ip), request-transformer (headers), and prometheus
// (counted here, served on the status listener). They run in Kong's priority
// order: correlation-id, ip-restriction, rate-limiting, request-transformer.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var pluginOrder = []string{"correlation-id", "ip-restriction", "rate-limiting", "request-transformer"}

// known are the plugins the stand-in implements; any other is refused at load.
var knownPlugins = map[string]bool{"correlation-id": true, "ip-restriction": true, "rate-limiting": true,
	"request-transformer": true, "prometheus": true}

// pluginResult is a plugin's answer when it ends the request itself.
type pluginResult struct {
	status  int
	message string
	headers http.Header
}

type plugins struct {
	mu      sync.Mutex
	windows map[string]*window // rate-limiting: scope|ip|unit → window
	counter atomic.Uint64      // correlation-id's uuid#counter
	seed    string
	now     func() time.Time
}

type window struct {
	start time.Time
	count int
}

func newPlugins() *plugins {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return &plugins{windows: map[string]*window{}, seed: h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], now: time.Now}
}

// access runs the access phase of the plugins in effect for a request (global,
// then the service's and the route's, each plugin once, the most specific
// winning), in priority order. It may end the request (a non-nil result), and
// sets response headers in out.
func (p *plugins) access(list []kongPlugin, scope string, r *http.Request, clientIP string, out http.Header) *pluginResult {
	byName := map[string]kongPlugin{}
	for _, pl := range list {
		if pl.Enabled == nil || *pl.Enabled {
			byName[pl.Name] = pl
		}
	}
	for _, name := range pluginOrder {
		pl, ok := byName[name]
		if !ok {
			continue
		}
		var res *pluginResult
		switch name {
		case "correlation-id":
			p.correlationID(pl.Config, r, out)
		case "ip-restriction":
			res = ipRestriction(pl.Config, clientIP)
		case "rate-limiting":
			res = p.rateLimit(pl.Config, scope, clientIP, out)
		case "request-transformer":
			requestTransformer(pl.Config, r)
		}
		if res != nil {
			return res
		}
	}
	return nil
}

func (p *plugins) correlationID(cfg map[string]any, r *http.Request, out http.Header) {
	name := cfgString(cfg, "header_name", "Kong-Request-ID")
	id := r.Header.Get(name)
	if id == "" {
		switch cfgString(cfg, "generator", "uuid#counter") {
		case "uuid#counter":
			id = fmt.Sprintf("%s#%d", p.seed, p.counter.Add(1))
		default:
			b := make([]byte, 16)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		r.Header.Set(name, id)
	}
	if cfgBool(cfg, "echo_downstream", false) {
		out.Set(name, id)
	}
}

func ipRestriction(cfg map[string]any, clientIP string) *pluginResult {
	ip := net.ParseIP(clientIP)
	in := func(list []string) bool {
		for _, e := range list {
			if _, n, err := net.ParseCIDR(e); err == nil && ip != nil && n.Contains(ip) {
				return true
			}
			if e == clientIP {
				return true
			}
		}
		return false
	}
	deny := cfgStrings(cfg, "deny")
	allow := cfgStrings(cfg, "allow")
	if in(deny) || (len(allow) > 0 && !in(allow)) {
		return &pluginResult{status: cfgInt(cfg, "status", http.StatusForbidden),
			message: cfgString(cfg, "message", "Your IP address is not allowed")}
	}
	return nil
}

// rateLimit: fixed windows aligned on the clock (Kong's local policy), counted per
// plugin scope and client IP; over the limit, 429 "API rate limit exceeded".
func (p *plugins) rateLimit(cfg map[string]any, scope, clientIP string, out http.Header) *pluginResult {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var limited *pluginResult
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"second", time.Second}, {"minute", time.Minute}, {"hour", time.Hour}, {"day", 24 * time.Hour}} {
		limit := cfgInt(cfg, u.name, 0)
		if limit <= 0 {
			continue
		}
		key := scope + "|" + clientIP + "|" + u.name
		start := now.Truncate(u.d)
		w := p.windows[key]
		if w == nil || !w.start.Equal(start) {
			w = &window{start: start}
			p.windows[key] = w
		}
		remaining := limit - w.count
		title := strings.ToUpper(u.name[:1]) + u.name[1:]
		out.Set("X-RateLimit-Limit-"+title, fmt.Sprint(limit))
		if remaining <= 0 {
			out.Set("X-RateLimit-Remaining-"+title, "0")
			limited = &pluginResult{status: http.StatusTooManyRequests, message: "API rate limit exceeded",
				headers: http.Header{"Retry-After": {fmt.Sprint(int(start.Add(u.d).Sub(now).Seconds()) + 1)}}}
			continue
		}
		out.Set("X-RateLimit-Remaining-"+title, fmt.Sprint(remaining-1))
		out.Set("RateLimit-Limit", fmt.Sprint(limit))
		out.Set("RateLimit-Remaining", fmt.Sprint(remaining-1))
		out.Set("RateLimit-Reset", fmt.Sprint(int(start.Add(u.d).Sub(now).Seconds())))
	}
	if limited != nil {
		return limited
	}
	for _, u := range []string{"second", "minute", "hour", "day"} {
		if cfgInt(cfg, u, 0) > 0 {
			p.windows[scope+"|"+clientIP+"|"+u].count++
		}
	}
	return nil
}

// requestTransformer applies remove, rename, replace, add, append to headers, in
// that order (Kong's). add sets a header only when absent; replace only when
// present.
func requestTransformer(cfg map[string]any, r *http.Request) {
	sub := func(op string) []string {
		m, _ := cfg[op].(map[string]any)
		return cfgStrings(m, "headers")
	}
	for _, h := range sub("remove") {
		r.Header.Del(h)
	}
	for _, kv := range sub("rename") {
		from, to, _ := strings.Cut(kv, ":")
		if v := r.Header.Values(from); len(v) > 0 {
			r.Header.Del(from)
			r.Header[http.CanonicalHeaderKey(to)] = v
		}
	}
	for _, kv := range sub("replace") {
		k, v, _ := strings.Cut(kv, ":")
		if r.Header.Get(k) != "" {
			r.Header.Set(k, v)
		}
	}
	for _, kv := range sub("add") {
		k, v, _ := strings.Cut(kv, ":")
		if r.Header.Get(k) == "" {
			r.Header.Set(k, v)
		}
	}
	for _, kv := range sub("append") {
		k, v, _ := strings.Cut(kv, ":")
		r.Header.Add(k, v)
	}
}

func cfgString(cfg map[string]any, k, def string) string {
	if s, ok := cfg[k].(string); ok {
		return s
	}
	return def
}

func cfgBool(cfg map[string]any, k string, def bool) bool {
	if b, ok := cfg[k].(bool); ok {
		return b
	}
	return def
}

func cfgInt(cfg map[string]any, k string, def int) int {
	switch x := cfg[k].(type) {
	case int:
		return x
	case float64:
		return int(x)
	}
	return def
}

func cfgStrings(cfg map[string]any, k string) []string {
	raw, _ := cfg[k].([]any)
	out := make([]string, 0, len(raw))
	for _, e := range raw {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
