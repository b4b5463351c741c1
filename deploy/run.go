package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/mongo"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/swarm"
	"github.com/sitectl/sitectl/tunnels"
	"github.com/sitectl/sitectl/tunnels/firewall"
)

// Parts returns the parts of every site's deploy path, built from the options, in
// the order they plan and apply: swarm membership, the site networks and stacks,
// each app (a group of its own, see Apps), then the parts other packages
// contribute. Add yours with one line. With opts.Stacks set (`--app`) only the
// stacks part (the site networks) and the named apps run: nothing of another stack
// or part is planned, changed or pruned.
func Parts(opts Options) []plan.Part {
	if len(opts.Stacks) > 0 {
		return []plan.Part{Stacks, Apps}
	}
	return []plan.Part{
		swarm.Part{},
		kong.CertPart{},
		Stacks,
		Apps,
		tunnels.Part{},
		firewall.Part{},
		postgres.NewPart(opts.Replication),
		backup.Part{},
		mongo.Part{},
	}
}

// Waiter is a part whose changes take time to settle (services rolling out);
// deploy waits for it before the next part.
type Waiter interface {
	Wait(ctx context.Context, topo *sites.Topology, site *sites.Site) error
}

// Plan reads every selected site's live state (sites and each site's parts in
// parallel) and returns the steps that would bring it to its configuration. It changes nothing. A site that cannot
// be planned carries its error; the other sites are still planned. The parts that
// hold connections are closed (plan.Closer) once every site is planned.
func Plan(ctx context.Context, topo *sites.Topology, selected []*sites.Site, parts []plan.Part, opts Options) *plan.Plan {
	defer plan.Close(parts)
	p := &plan.Plan{Env: topo.Env, Sites: make([]plan.SitePlan, len(selected))}
	forEach(selected, func(i int, site *sites.Site) {
		p.Sites[i] = planSite(ctx, topo, site, parts, opts)
	})
	return p
}

func planSite(ctx context.Context, topo *sites.Topology, site *sites.Site, parts []plan.Part, opts Options) plan.SitePlan {
	sp := plan.SitePlan{Site: site.Name, Steps: []plan.Step{}}
	eng, closeEng, err := opts.open(ctx, site)
	if err != nil {
		sp.Error = err.Error()
		return sp
	}
	defer closeEng()
	s := newSession(topo, site, eng, opts)
	results := planParts(ctx, s, parts)
	var errs []string
	pending := false // an earlier part has changes still to apply
	for i, part := range parts {
		steps, err := results[i].steps, results[i].err
		if err != nil && pending && plan.IsNotYet(err) {
			// What this part reads (a database a stack starts) may only exist once
			// the steps above are applied; deploy plans each part after the previous
			// one applied, so this is a pending change, not a failure of the plan.
			// Only errors the part marked plan.NotYet: a missing input (a secret
			// whose source is unset) is an error whatever is pending.
			sp.Steps = append(sp.Steps, plan.Step{Site: site.Name, Component: plan.Component(part.Name()), Action: plan.Update,
				Name: "(planned during deploy, after the steps above)",
				Note: fmt.Sprintf("cannot be read before the steps above are applied: %v", err)})
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", part.Name(), err))
			continue
		}
		for _, st := range steps {
			if st.Action != plan.Noop {
				pending = true
			}
		}
		for _, st := range steps {
			if st.Action == plan.Noop && st.Note != "" {
				sp.Notes = append(sp.Notes, st.Note)
			}
		}
		sp.Steps = append(sp.Steps, steps...)
	}
	sp.Error = strings.Join(errs, "; ")
	return sp
}

// planned is one part's plan of a site.
type planned struct {
	steps []plan.Step
	err   error
}

// planParts plans every part of the site at once: a part's plan only reads (what
// the parts before it would change is folded in by planSite, in order), so the
// site's plan takes as long as its slowest part, not as long as all of them. The
// parts of this package share the run's session (its snapshot of the swarm, its
// built stacks): they plan one after the other, in their order, in one goroutine.
func planParts(ctx context.Context, s *session, parts []plan.Part) []planned {
	out := make([]planned, len(parts))
	var own []int // the parts planned with the session
	var wg sync.WaitGroup
	for i, part := range parts {
		if _, ok := part.(sessionPart); ok {
			own = append(own, i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].steps, out[i].err = planPart(ctx, s, part)
		}()
	}
	for _, i := range own {
		out[i].steps, out[i].err = planPart(ctx, s, parts[i])
	}
	wg.Wait()
	return out
}

// SiteResult is what deploy did to one site.
type SiteResult struct {
	Site     string        `json:"site"`
	Applied  []plan.Step   `json:"applied"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
	err      error
}

// Err is the site's error (nil when it converged).
func (r SiteResult) Err() error { return r.err }

// Deploy applies every selected site's plan, sites in parallel: per site it takes
// the deploy lock, then plans and applies each part in turn (each part sees what
// the previous ones changed), waiting for the services to converge. A failing site
// does not stop the others. The parts that hold connections are closed
// (plan.Closer) once every site is done.
func Deploy(ctx context.Context, topo *sites.Topology, selected []*sites.Site, parts []plan.Part, opts Options) []SiteResult {
	defer plan.Close(parts)
	out := make([]SiteResult, len(selected))
	forEach(selected, func(i int, site *sites.Site) {
		start := time.Now()
		applied, err := deploySite(ctx, topo, site, parts, opts)
		out[i] = SiteResult{Site: site.Name, Applied: applied, Duration: time.Since(start), err: err}
		if applied == nil {
			out[i].Applied = []plan.Step{}
		}
		if err != nil {
			out[i].err = fmt.Errorf("deploy %s: %w", site.Name, err)
			out[i].Error = out[i].err.Error()
		}
	})
	return out
}

func deploySite(ctx context.Context, topo *sites.Topology, site *sites.Site, parts []plan.Part, opts Options) (applied []plan.Step, err error) {
	eng, closeEng, err := opts.open(ctx, site)
	if err != nil {
		return nil, err
	}
	defer closeEng()
	s := newSession(topo, site, eng, opts)
	var lk *lock
	defer func() {
		if lk != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			err = errors.Join(err, lk.release(rctx))
		}
	}()
	takeLock := func() error {
		active, _, err := s.swarmState(ctx)
		if err != nil || !active {
			return err
		}
		lk, err = s.acquireLock(ctx)
		return err
	}
	// The lock lives in the swarm: before the swarm exists (first deploy), the swarm
	// part runs unlocked and the lock is taken as soon as there is a swarm.
	if err := takeLock(); err != nil {
		return nil, err
	}
	var failed []error // apps that failed: the rest of the site still deploys
	for _, part := range parts {
		if _, ok := part.(appsPart); ok {
			done, errs := deployGroups(ctx, opts, appGroups(s))
			applied, failed = append(applied, done...), append(failed, errs...)
			continue
		}
		steps, err := planPart(ctx, s, part)
		if err != nil {
			return applied, errors.Join(append(failed, fmt.Errorf("plan %s: %w", part.Name(), err))...)
		}
		w, _ := part.(Waiter)
		done, err := applySteps(ctx, s, opts, part.Name(), steps, w)
		applied = append(applied, done...)
		if err != nil {
			return applied, errors.Join(append(failed, err)...)
		}
		if lk == nil {
			if err := takeLock(); err != nil {
				return applied, errors.Join(append(failed, err)...)
			}
		}
	}
	return applied, errors.Join(failed...)
}

// applySteps applies one part's (or app group's) steps in order and, for a waiting
// part, waits for its services to converge; removals of what services used (old
// secret versions, networks) come after they converged. The first error stops it.
func applySteps(ctx context.Context, s *session, opts Options, name string, steps []plan.Step, w Waiter) (applied []plan.Step, err error) {
	waited := false
	wait := func() error {
		waited = true
		done := opts.Progress.Step("%s: %s converged", s.site.Name, name)
		err := waitPart(ctx, s, w)
		s.snap.forget() // the services rolled on meanwhile
		done(err)
		return err
	}
	for _, st := range steps {
		if st.Action == plan.Noop || st.Apply == nil {
			continue
		}
		if w != nil && !waited && st.Action == plan.Remove && st.Component != ComponentService {
			if err := wait(); err != nil {
				return applied, err
			}
		}
		done := opts.Progress.Step("%s: %s", s.site.Name, st)
		s.snap.forget() // the next plan reads what this step changed
		err := st.Apply(ctx)
		done(err)
		if err != nil {
			return applied, fmt.Errorf("%s: %w", st, err)
		}
		applied = append(applied, st)
	}
	if w != nil && !waited {
		if err := wait(); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

func forEach(selected []*sites.Site, f func(int, *sites.Site)) {
	var wg sync.WaitGroup
	for i, s := range selected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i, s)
		}()
	}
	wg.Wait()
}
