package audit

import (
	"context"
	"net"
	"sync"
	"time"

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
// probes cannot see (Inspect). The probes come from the WAN vantage of the first
// site's Reach (in the lab, lab/labreach: the lab's WAN namespace with a route to
// each site's LAN via its gateway, removed afterwards); without one, from this
// machine. A site whose config names a lab namespace but that has no reach
// installed is refused.
func Run(ctx context.Context, topo *sites.Topology, selected []*sites.Site, opts Options) (*Report, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 700 * time.Millisecond
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 64
	}
	for _, s := range selected {
		if s.InLab() && s.Reach.WAN == nil {
			return nil, s.NoReach("the audit's probes")
		}
	}
	start := time.Now()
	rep := &Report{Env: topo.Env, From: "this machine", Findings: []Finding{}}
	dial := Dialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
	if len(selected) > 0 && selected[0].Reach.WAN != nil {
		v, err := selected[0].Reach.WAN(ctx, selected)
		if err != nil {
			return nil, err
		}
		defer v.Undo()
		rep.From, dial = v.From, Dialer(v.Dial)
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
