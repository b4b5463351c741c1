package drill

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// preflight checks that every site answers and has the drill table, every link is up
// and every replication flow streams with little lag. It returns the flows' state
// (the baseline of the error counters) and an error naming what failed.
func (p *Drill) preflight(ctx context.Context, s Settings, rep *Report) ([]FlowState, error) {
	add := func(name string, err error, okDetail string) {
		c := Check{Name: name, Passed: err == nil, Detail: okDetail}
		if err != nil {
			c.Detail = err.Error()
		}
		rep.Preflight = append(rep.Preflight, c)
	}
	for _, site := range p.Topo.Sites {
		if !site.HasStack("postgres") {
			continue
		}
		st, ok := p.Stores[site.Name]
		if !ok {
			add("database "+site.Name, fmt.Errorf("no connection to %s's database configured", site.Name), "")
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := st.Ping(cctx)
		if err == nil {
			err = st.Prepare(cctx)
		}
		cancel()
		add("database "+site.Name, err, "reachable, table "+Table+" ready")
	}
	if p.Checker != nil {
		for _, l := range p.Topo.Links {
			up, err := p.Checker.LinkUp(ctx, l)
			if err == nil && !up {
				err = fmt.Errorf("tunnel down (bring it up: sitectl tunnels up --link %s)", l.Name())
			}
			add("link "+l.Name(), err, "up")
		}
	}
	flows, err := p.Observer.Flows(ctx)
	if err != nil {
		add("replication", err, "")
	} else {
		byName := map[string]FlowState{}
		for _, f := range flows {
			byName[f.Name()] = f
		}
		for _, want := range p.Topo.Flows {
			name := want.From + "→" + want.To
			f, ok := byName[name]
			var ferr error
			switch {
			case !ok:
				ferr = fmt.Errorf("no subscription at %s for %s's rows (run sitectl deploy)", want.To, want.From)
			case !f.Enabled || f.State != StateStreaming:
				ferr = fmt.Errorf("%s%s (see sitectl replication status)", f.State, suffix(f.LastError))
			case !f.Published:
				ferr = fmt.Errorf("table %s is not in %s's publication: list it in postgres.tables and deploy", Table, want.From)
			case f.LagBytes > s.MaxLagBytes:
				ferr = fmt.Errorf("lag %d bytes, above %d: wait for it to catch up", f.LagBytes, s.MaxLagBytes)
			}
			add("flow "+name, ferr, fmt.Sprintf("streaming, lag %d bytes", f.LagBytes))
		}
	}
	var failed []string
	for _, c := range rep.Preflight {
		if !c.Passed {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	if len(failed) > 0 {
		return flows, fmt.Errorf("preflight failed, nothing was cut: %s", strings.Join(failed, "; "))
	}
	return flows, nil
}

// sampler polls the replication flows for the timeline's lag curves and notes when
// PostgreSQL itself reports every flow caught up after the heal.
type sampler struct {
	obs   Observer
	rec   *recorder
	now   func() time.Time
	every time.Duration

	mu       sync.Mutex
	healAt   time.Time
	caughtUp time.Time
	last     []FlowState
}

func (sm *sampler) run(ctx context.Context) {
	t := time.NewTicker(sm.every)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		flows, err := sm.obs.Flows(cctx)
		cancel()
		if err == nil {
			at := sm.now()
			sm.rec.sample(at, flows)
			sm.mu.Lock()
			sm.last = flows
			if !sm.healAt.IsZero() && sm.caughtUp.IsZero() && allCaughtUp(flows) {
				sm.caughtUp = at
			}
			sm.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (sm *sampler) healed(at time.Time) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.healAt = at
}

func (sm *sampler) caughtUpAt() time.Time {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.caughtUp
}

func (sm *sampler) lagLine() string {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	parts := make([]string, 0, len(sm.last))
	for _, f := range sm.last {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", f.Name(), byteSize(f.LagBytes), f.State))
	}
	return strings.Join(parts, ", ")
}

func allCaughtUp(flows []FlowState) bool {
	if len(flows) == 0 {
		return false
	}
	for _, f := range flows {
		if f.State != StateStreaming || f.LagBytes != 0 {
			return false
		}
	}
	return true
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// resyncEvery is how often converge resumes replication disabled by a lost connection.
const resyncEvery = 3 * time.Second

// converge polls every site until each holds every acknowledged write it should, with
// a live progress line (rows to go, lag per flow). It returns the last holdings read.
func (p *Drill) converge(ctx context.Context, s Settings, attempts []Attempt, healAt time.Time,
	ev func(kind, target, detail string) time.Time) (map[string][]Row, bool, error) {
	place := FlowPlacement(p.Topo.Flows)
	deadline := healAt.Add(s.Converge)
	step := p.Progress.Step("converge (up to %s)", s.Converge)
	end := func(err error) { p.Progress.Drop("converging:"); step(err) }
	var holdings map[string][]Row
	lastInfo, lastResync := time.Time{}, p.now()
	for {
		// A walreceiver that lost its connection during the cut may only time out
		// (wal_receiver_timeout) after the heal, and disable_on_error then disables
		// its subscription: keep resuming while waiting, not just once at the heal.
		if p.Resyncer != nil && p.now().Sub(lastResync) >= resyncEvery {
			lastResync = p.now()
			if what, err := p.Resyncer.Resync(ctx); err == nil && !strings.HasPrefix(what, "enabled 0 ") {
				ev(EvResync, "", what)
				p.Progress.Infof("resync: %s", what)
			}
		}
		h, err := p.readAll(ctx)
		if err == nil {
			holdings = h
			missing := Verify(VerifyInput{Attempts: attempts, Holdings: h, Place: place}).Lost
			if missing == 0 {
				d := p.now().Sub(healAt)
				end(nil)
				ev(EvConverged, "", fmt.Sprintf("%.2fs after the heal", d.Seconds()))
				return holdings, true, nil
			}
			if p.now().Sub(lastInfo) >= time.Second {
				lastInfo = p.now()
				p.Progress.Status("converging:", fmt.Sprintf("%d row copy(ies) to go; lag %s", missing, p.lagLine()))
			}
		}
		if ctx.Err() != nil {
			err := fmt.Errorf("interrupted while converging (links healed): %w", context.Cause(ctx))
			end(err)
			ev(EvInterrupted, "", err.Error())
			return holdings, false, err
		}
		if p.now().After(deadline) {
			err := fmt.Errorf("not converged %s after the heal (raise --converge-timeout, or see sitectl replication status)", s.Converge)
			end(err)
			ev(EvError, "", err.Error())
			if holdings == nil {
				holdings, _ = p.readAll(context.WithoutCancel(ctx))
			}
			return holdings, false, err
		}
		p.sleep(s.Sample)
	}
}

func (p *Drill) lagLine() string {
	if p.smp == nil {
		return "unknown"
	}
	return p.smp.lagLine()
}

// readAll reads this run's rows at every site.
func (p *Drill) readAll(ctx context.Context) (map[string][]Row, error) {
	out := make(map[string][]Row, len(p.Stores))
	for _, site := range p.storeSites() {
		rows, err := p.Stores[site].Rows(ctx, p.RunID)
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %w", Table, site, err)
		}
		out[site] = rows
	}
	return out, nil
}
