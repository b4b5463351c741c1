package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/drill/live"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// apiCounter counts the Docker API requests of the engines countingOpen opens, by
// site and by method and path (IDs and names cut off).
type apiCounter struct {
	mu    sync.Mutex
	site  map[string]int
	calls map[string]int
}

type countingTransport struct {
	c    *apiCounter
	site string
	rt   http.RoundTripper
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	p := r.URL.Path
	if i := strings.Index(p, "/v1."); i >= 0 {
		p = p[i+5:]
		if j := strings.Index(p, "/"); j >= 0 {
			p = p[j:]
		}
	}
	if parts := strings.Split(p, "/"); len(parts) > 2 {
		p = "/" + parts[1] + "/{id}"
	}
	t.c.mu.Lock()
	t.c.site[t.site]++
	t.c.calls[r.Method+" "+p]++
	t.c.mu.Unlock()
	return t.rt.RoundTrip(r)
}

// open opens the site's engine (a unix socket in the lab) with a counting transport.
func (c *apiCounter) open(ctx context.Context, s *sites.Site) (deploy.Engine, func(), error) {
	host := engine.SiteEndpoint(s).Host
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return nil, nil, fmt.Errorf("site %s: engine %s is not a unix socket", s.Name, host)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	cl, err := client.New(client.WithHost(host), client.WithHTTPClient(&http.Client{Transport: countingTransport{c: c, site: s.Name, rt: tr}}))
	if err != nil {
		return nil, nil, err
	}
	if _, err := cl.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return nil, nil, err
	}
	return cl, func() { _ = cl.Close() }, nil
}

func (c *apiCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys []string
	for k := range c.calls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "per site %v;", c.site)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s ×%d", k, c.calls[k])
	}
	return b.String()
}

// planBreakdown times loading the configuration and the apps and reading the drill
// records, then plans every site with each part alone (the stacks and apps parts
// together: they share a session) and logs how long each took and, for the
// stacks and apps parts, the Docker API requests per site.
func planBreakdown(ctx context.Context, b *testing.B, topo *sites.Topology, configDir, appsDir string) {
	b.Helper()
	start := time.Now()
	names, err := apps.Names(appsDir)
	if err != nil {
		b.Fatal(err)
	}
	t, err := sites.Load(sites.Options{Dir: configDir, Env: "lab", Environ: []string{}, KnownStacks: append(names, sites.KnownStacks...)})
	if err != nil {
		b.Fatal(err)
	}
	if _, ps := apps.Load(apps.Options{Dir: appsDir, Topo: t, Environ: []string{}}); len(ps) > 0 {
		b.Fatal(ps)
	}
	b.Logf("load the configuration and the apps: %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	left, errs := live.Leftovers(ctx, topo, nil)
	b.Logf("read the drill records: %s (%d left, errors %v)", time.Since(start).Round(time.Millisecond), len(left), errs)
	all := deploy.Parts(deploy.Options{})
	var groups [][]plan.Part
	for i := 0; i < len(all); i++ {
		if all[i] == deploy.Stacks && i+1 < len(all) && all[i+1] == deploy.Apps {
			groups = append(groups, all[i:i+2])
			i++
			continue
		}
		groups = append(groups, all[i:i+1])
	}
	for _, g := range groups {
		c := &apiCounter{site: map[string]int{}, calls: map[string]int{}}
		opts := deploy.Options{Environ: []string{}, Open: c.open}
		start := time.Now()
		p := deploy.Plan(ctx, topo, topo.Sites, g, opts)
		var names []string
		for _, part := range g {
			names = append(names, part.Name())
		}
		b.Logf("part %s: %s, %d steps, failed %v; docker API: %s", strings.Join(names, "+"), time.Since(start).Round(time.Millisecond), p.Changes(), p.Failed(), c)
	}
}
