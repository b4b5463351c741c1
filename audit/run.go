package audit

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/sites"
)

// Options tune a run.
type Options struct {
	Timeout  time.Duration // per probe (default 700ms)
	Parallel int           // probes at once (default 64)
	// ExposureOnly skips what Inspect reads (configuration, services, PostgreSQL).
	ExposureOnly bool
}

// Run audits the selected sites: their exposure (probes) and, meanwhile, what the
// probes cannot see (Inspect). In the lab (lab.namespace set) it probes
// from the lab's WAN namespace after adding, there, a route to each site's LAN via
// its gateway — what any WAN neighbour can do — and removes the routes it added;
// elsewhere from this machine.
func Run(ctx context.Context, topo *sites.Topology, selected []*sites.Site, opts Options) (*Report, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 700 * time.Millisecond
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 64
	}
	start := time.Now()
	rep := &Report{Env: topo.Env, From: "this machine", Findings: []Finding{}}
	dial := Dialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
	if len(selected) > 0 && selected[0].Lab.Namespace != "" {
		wan, undo, err := labVantage(ctx, selected)
		if err != nil {
			return nil, err
		}
		defer undo()
		rep.From = "lab WAN namespace " + wan + " (with a route to each site's LAN via its gateway)"
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return netns.DialContext(ctx, wan, network, addr)
		}
	}
	// What probing cannot see is read meanwhile, one site at a time each.
	read := make([][]Finding, len(selected))
	var wg sync.WaitGroup
	for i, s := range selected {
		if opts.ExposureOnly {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			read[i] = Inspect(ctx, topo, s)
		}()
	}
	f, n, err := Exposure(ctx, topo, selected, dial, opts.Timeout, opts.Parallel)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	rep.Findings = append(rep.Findings, f...)
	for _, r := range read {
		rep.Findings = append(rep.Findings, r...)
	}
	rep.Probes, rep.Took = n, time.Since(start)
	return rep, nil
}

// labVantage adds, in the lab's WAN namespace, a route to each site's LAN via the
// site's gateway; undo removes the routes it added (not ones that were there).
func labVantage(ctx context.Context, selected []*sites.Site) (string, func(), error) {
	st, err := lab.ReadState(selected[0].Lab.StateDir)
	if err != nil {
		return "", nil, fmt.Errorf("audit: lab state in %s: %w (is the lab up? `sitectl lab status`)", selected[0].Lab.StateDir, err)
	}
	wan := st.Layout.WANNS
	var added []string
	undo := func() {
		for _, lan := range added {
			_, _ = netns.Run(context.Background(), wan, "ip", "route", "del", lan)
		}
	}
	for _, s := range selected {
		out, err := netns.Run(ctx, wan, "ip", "route", "add", s.LAN, "via", s.Gateway.WANAddress)
		switch {
		case err == nil:
			added = append(added, s.LAN)
		case strings.Contains(string(out), "File exists"):
		default:
			undo()
			return "", nil, fmt.Errorf("audit %s: route to %s via %s in %s: %w", s.Name, s.LAN, s.Gateway.WANAddress, wan, err)
		}
	}
	return wan, undo, nil
}
