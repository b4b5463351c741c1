package drill

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The phases of Drill.Run after the preflight.

// inject writes the rows that must survive the faults, then records and injects
// each fault: recorded outside this process and armed for removal before it is
// injected. It returns the rows written before and when the last fault took
// effect; ok is false when the drill stops here (rep says why).
func (p *Drill) inject(ctx context.Context, rep *Report, h *healer, ev func(kind, target, detail string) time.Time) (pre []Attempt, cutAt time.Time, ok bool) {
	// Rows written before the faults must survive them (db-down restarts a database).
	if p.PreWrites > 0 {
		pre = p.writeBefore(ctx, ev)
	}
	if err := p.record(ctx, h); err != nil {
		ev(EvError, "", err.Error())
		rep.Error = err.Error()
		return nil, time.Time{}, false
	}
	cutAt = p.now()
	for _, f := range p.Faults {
		i := h.arm(f, p.now())
		on, _ := f.Events()
		end := p.Progress.Step("%s %s", on, f.Name())
		err := f.Inject(ctx)
		end(err)
		if err != nil {
			if ctx.Err() != nil {
				p.interrupted(ctx, rep, ev)
				return nil, time.Time{}, false
			}
			ev(EvError, f.Name(), on+": "+err.Error())
			rep.Error = fmt.Sprintf("%s %s: %v", on, f.Name(), err)
			return nil, time.Time{}, false
		}
		cutAt = ev(on, f.Name(), "")
		h.injected(i, cutAt)
	}
	return pre, cutAt, true
}

// checkCut observes, when a checker is set, that every cut link is down.
func (p *Drill) checkCut(ctx context.Context, rep *Report) {
	if p.Checker == nil {
		return
	}
	for _, l := range p.Links {
		up, err := p.Checker.LinkUp(ctx, l)
		rep.Observations = append(rep.Observations, Observation{What: "link " + l.Name() + " down during the cut",
			OK: err == nil && !up, Detail: linkDetail(up, err)})
	}
}

// faultResults is what happened while the faults were in place.
type faultResults struct {
	attempts []Attempt
	stats    []WriteStats
	probed   [][]Observation
	mongo    []mongoAttempt
}

// underFaults writes on every side, probes and writes to MongoDB, together, until
// the window (ctx) ends.
func (p *Drill) underFaults(ctx context.Context, s Settings, until time.Time, ev func(kind, target, detail string) time.Time) faultResults {
	var (
		r  faultResults
		wg sync.WaitGroup
	)
	r.probed = make([][]Observation, len(p.Probes))
	wg.Add(1)
	go func() { defer wg.Done(); defer p.catch(); r.attempts, r.stats = p.write(ctx, s, until, ev) }()
	for i, pr := range p.Probes {
		wg.Add(1)
		go func() { defer wg.Done(); defer p.catch(); r.probed[i] = pr.Observe(ctx) }()
	}
	if len(p.Mongo) > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); defer p.catch(); r.mongo = p.writeMongo(ctx, s) }()
	}
	wg.Wait()
	p.rethrow()
	return r
}

// convergeAll waits for every site to hold every row, then reads the holdings
// afresh for the verdict. ok is false when the drill stops here (rep says why).
func (p *Drill) convergeAll(ctx context.Context, s Settings, rep *Report, attempts []Attempt, healAt time.Time, ev func(kind, target, detail string) time.Time) (map[string][]Row, bool) {
	holdings, converged, err := p.converge(ctx, s, attempts, healAt, ev)
	rep.Converged = converged
	if converged {
		rep.HealToConverged = Secs(p.now().Sub(healAt))
	}
	if err != nil {
		if ctx.Err() != nil {
			p.interrupted(ctx, rep, ev)
			return nil, false
		}
		rep.Error = err.Error()
		if holdings == nil {
			return nil, false
		}
	}
	// The verdict comes from a fresh read after convergence: a row that vanished since
	// (deleted behind the drill's back) must show as lost.
	if final, err := p.readAll(context.WithoutCancel(ctx)); err == nil {
		holdings = final
	} else {
		rep.Error = joinErr(rep.Error, "final read: "+err.Error())
	}
	return holdings, true
}

// waitCaughtUp lets the sampler see PostgreSQL's own view catch up after a
// convergence, then stops it (stop) and records when every flow caught up.
func (p *Drill) waitCaughtUp(s Settings, rep *Report, rec *recorder, healAt time.Time, stop func()) {
	if rep.Converged && len(p.Topo.Flows) > 0 {
		// Let the sampler see PostgreSQL's own view catch up (slots confirmed, zero
		// lag), which trails the rows becoming visible by a feedback round.
		for wait := p.now().Add(caughtUpGrace); p.smp.caughtUpAt().IsZero() && p.now().Before(wait); {
			p.sleep(s.Sample)
		}
	}
	stop()
	if t := p.smp.caughtUpAt(); !t.IsZero() {
		rep.HealToCaughtUp = Secs(t.Sub(healAt))
		rec.eventAt(t, EvCaughtUp, "", fmt.Sprintf("every flow streaming with zero lag, %.2fs after the heal", t.Sub(healAt).Seconds()))
	}
}

// verify gives the drill its verdict: every row where it belongs, once, and the
// MongoDB writes acknowledged by a majority kept.
func (p *Drill) verify(ctx context.Context, rep *Report, attempts []Attempt, holdings map[string][]Row, before []FlowState, mongo []mongoAttempt, ev func(kind, target, detail string) time.Time) {
	after, ferr := p.Observer.Flows(context.WithoutCancel(ctx))
	if ferr != nil {
		rep.Error = joinErr(rep.Error, fmt.Sprintf("read replication state after the drill: %v", ferr))
	}
	v := Verify(VerifyInput{Attempts: attempts, Holdings: holdings, Place: FlowPlacement(p.Topo.Flows), Before: before, After: after})
	rep.Verdict = &v
	ev(EvVerified, "", fmt.Sprintf("lost=%d duplicated=%d collisions=%d", v.Lost, v.Duplicated, v.Collisions))
	if len(p.Mongo) > 0 {
		rep.Mongo = p.verifyMongo(context.WithoutCancel(ctx), mongo)
		if !rep.Mongo.Passed {
			v.Passed = false
			v.Checks = append(v.Checks, Check{Name: "mongodb", Passed: false, Detail: rep.Mongo.Detail})
		} else {
			v.Checks = append(v.Checks, Check{Name: "mongodb", Passed: true, Detail: rep.Mongo.Detail})
		}
		rep.Verdict = &v
	}
}
