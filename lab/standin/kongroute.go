package main

// The Kong stand-in's router, modelled on Kong's traditional(_compatible) router
// (Kong Gateway docs, "Traditional router"): a request matches a route when it
// matches every field the route sets (protocols, methods, hosts, headers, paths),
// each against any of the field's values; among matching routes the one with the
// most fields set wins, then plain hosts over wildcard hosts, then the longest
// matching path prefix. Regex paths ("~...") are refused at load: sitectl writes
// none.

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

type compiledRoute struct {
	kongRoute
	service *kongService
	index   int // declaration order, the last tie-breaker
}

type router struct{ routes []*compiledRoute }

func newRouter(c *kongConfig) (*router, error) {
	r := &router{}
	for i := range c.Services {
		s := &c.Services[i]
		for j := range s.Routes {
			rt := s.Routes[j]
			for _, p := range rt.Paths {
				if strings.HasPrefix(p, "~") {
					return nil, fmt.Errorf("route %q: regex path %q: this stand-in matches prefix paths only", rt.Name, p)
				}
			}
			r.routes = append(r.routes, &compiledRoute{kongRoute: rt, service: s, index: len(r.routes)})
		}
	}
	return r, nil
}

// routeMatch is a matched route and what the request matched it with.
type routeMatch struct {
	route *compiledRoute
	path  string // the matching path prefix ("" when the route sets no paths)
	// wrongProtocol is true when everything matched but the request's protocol
	// (the route wants https and answers with its redirect code).
	wrongProtocol bool
}

// match finds the route for a request arriving over proto ("http" or "https").
func (rt *router) match(r *http.Request, proto string) (routeMatch, bool) {
	host := r.Host
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	host = strings.ToLower(host)
	type cand struct {
		m        routeMatch
		fields   int
		plain    bool
		pathLen  int
		position int
	}
	var cands []cand
	for _, cr := range rt.routes {
		fields := 0
		if len(cr.Methods) > 0 {
			if !containsFold(cr.Methods, r.Method) {
				continue
			}
			fields++
		}
		plain := true
		if len(cr.Hosts) > 0 {
			ok, wild := matchHost(cr.Hosts, host)
			if !ok {
				continue
			}
			plain = !wild
			fields++
		}
		if len(cr.Headers) > 0 {
			if !matchHeaders(cr.Headers, r.Header) {
				continue
			}
			fields += len(cr.Headers)
		}
		path := ""
		if len(cr.Paths) > 0 {
			var ok bool
			if path, ok = matchPath(cr.Paths, r.URL.Path); !ok {
				continue
			}
			fields++
		}
		m := routeMatch{route: cr, path: path, wrongProtocol: !contains(cr.Protocols, proto)}
		cands = append(cands, cand{m: m, fields: fields, plain: plain, pathLen: len(path), position: cr.index})
	}
	if len(cands) == 0 {
		return routeMatch{}, false
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.fields != b.fields {
			return a.fields > b.fields
		}
		if a.plain != b.plain {
			return a.plain
		}
		if a.pathLen != b.pathLen {
			return a.pathLen > b.pathLen
		}
		return a.position < b.position
	})
	return cands[0].m, true
}

// matchPath returns the longest of paths that prefixes p.
func matchPath(paths []string, p string) (string, bool) {
	best, ok := "", false
	for _, pre := range paths {
		if strings.HasPrefix(p, pre) && (!ok || len(pre) > len(best)) {
			best, ok = pre, true
		}
	}
	return best, ok
}

// matchHost matches host against plain names and wildcards with a leftmost
// ("*.example.com") or rightmost ("example.*") label.
func matchHost(hosts []string, host string) (ok, wildcard bool) {
	for _, h := range hosts {
		h = strings.ToLower(h)
		if h, _, cut := strings.Cut(h, ":"); cut && h == host {
			return true, false
		}
		switch {
		case h == host:
			return true, false
		case strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) && len(host) > len(h)-1:
			ok, wildcard = true, true
		case strings.HasSuffix(h, ".*") && strings.HasPrefix(host, h[:len(h)-1]) && len(host) > len(h)-1:
			ok, wildcard = true, true
		}
	}
	return ok, wildcard
}

// matchHeaders: every named header is present with one of the listed values
// (values compared case-insensitively, as Kong does).
func matchHeaders(want map[string][]string, got http.Header) bool {
	for name, values := range want {
		found := false
		for _, v := range got.Values(name) {
			if containsFold(values, v) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// upstreamPath is the path Kong sends upstream: with strip_path the matched prefix
// is removed (what is left, with a leading slash), after the service's path.
func upstreamPath(m routeMatch, reqPath, servicePath string) string {
	p := reqPath
	if *m.route.StripPath && m.path != "" {
		p = strings.TrimPrefix(reqPath, m.path)
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
	}
	if servicePath != "" && servicePath != "/" {
		p = strings.TrimSuffix(servicePath, "/") + p
	}
	return p
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}
