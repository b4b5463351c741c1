package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// Part is PostgreSQL replication as one part of `sitectl plan` / `deploy`. Each
// site's Plan reads every replicating site first, so an unreachable site stops the
// replication steps of all of them. Steps of different sites may be applied in
// parallel: a subscription step waits (Options.Wait) for its publisher's
// publication. Wait (deploy's Waiter) waits for the site's subscriptions to stream.
type Part struct {
	Opts Options
	mu   sync.Mutex
	topo *sites.Topology
	sess *Session
}

var _ plan.Part = (*Part)(nil)

// NewPart returns the replication part.
func NewPart(opts Options) *Part { return &Part{Opts: opts} }

// Name names the part in plans and errors.
func (p *Part) Name() string { return "postgres replication" }

// Plan returns the site's replication steps.
func (p *Part) Plan(ctx context.Context, topo *sites.Topology, site *sites.Site) ([]plan.Step, error) {
	pl, err := Plan(ctx, topo, p.session(topo), p.Opts)
	if err != nil {
		return nil, err
	}
	if e := pl.Errors[site.Name]; e != nil {
		if onlyNotAnswering(pl.Errors) {
			// Databases that do not answer may be started by the stacks part of this
			// same deploy: planned during deploy if steps ahead are pending.
			return nil, plan.NotYet(e)
		}
		return nil, e
	}
	return pl.Steps(site.Name), nil
}

// peerError is a site's replication not planned because another site cannot be.
type peerError struct{ err error }

func (e peerError) Error() string { return e.err.Error() }

// onlyNotAnswering reports whether every site's error is a database that does not
// answer (or follows from one): no missing secret, no refused login, no bad setting.
func onlyNotAnswering(errs map[string]error) bool {
	found := false
	for _, e := range errs {
		var u unreachableError
		switch {
		case errors.As(e, &u):
			found = true
		case errors.As(e, new(peerError)):
		default:
			return false
		}
	}
	return found
}

func (p *Part) session(topo *sites.Topology) *Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess == nil || p.topo != topo {
		if p.sess != nil {
			p.sess.Close()
		}
		p.sess, p.topo = NewSession(topo), topo
	}
	return p.sess
}

// Wait waits until the site's subscriptions stream (initial copies done), up to
// Opts.Wait (default 2m). A subscription stopped by a conflict fails it at once,
// with the conflict and its resolution.
//
// It also re-enables the flows the site publishes that are disabled by an error
// with no conflict pending, and waits for them: a stop of the site's server while
// its deploy runs (the old task of a re-created database service stopping late,
// a restart) cuts them, PostgreSQL 15 disables a subscription with
// disable_on_error on a lost connection, and the subscriber's deploy, running in
// parallel, may have re-enabled it and finished before. By this part the site's
// server is the one its deploy started.
func (p *Part) Wait(ctx context.Context, topo *sites.Topology, site *sites.Site) error {
	wait := p.Opts.Wait
	if wait == 0 {
		wait = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	sess := p.session(topo)
	d, err := buildLive(ctx, topo, sess)
	if err != nil {
		return err
	}
	resumed, tried := map[string]bool{}, map[string]bool{}
	for {
		r, err := Status(ctx, topo, sess, site.Name)
		if err != nil {
			return err
		}
		var waiting []string
		for _, f := range r.Flows {
			// Only subscribers this deploy includes (Opts.Starting, nil: every
			// site): a site outside it is not touched, nor waited for.
			if f.From == site.Name && f.To != site.Name && (p.Opts.Starting == nil || slices.Contains(p.Opts.Starting, f.To)) {
				if w, err := resumeFrom(ctx, sess, d, f, resumed, tried); err != nil {
					return err
				} else if w != "" {
					waiting = append(waiting, w)
				}
				continue
			}
			if f.To != site.Name {
				continue
			}
			if f.Pending != nil && f.Pending.Conflict != nil {
				return fmt.Errorf("subscription %s: %s; %s", f.Subscription, f.Pending.Conflict.Summary(), f.Resolution)
			}
			if f.State != StateStreaming && f.State != StateCatchingUp {
				waiting = append(waiting, fmt.Sprintf("%s is %s", f.Flow, f.State))
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replication at %s not streaming after %s: %s (see sitectl replication status)", site.Name, wait, strings.Join(waiting, ", "))
		case <-time.After(time.Second):
		}
	}
}

// resumeFrom re-enables a flow the site publishes when it is disabled by an error
// with no conflict pending (a lost connection) and its slot is there (a missing or
// lost one is the subscriber's deploy's to re-create), and says what is awaited of
// a flow it re-enabled ("" when nothing is). It tries a flow once per Wait: a
// subscription that disables itself again has another error, for the operator.
func resumeFrom(ctx context.Context, sess *Session, d *Desired, f FlowStatus, resumed, tried map[string]bool) (string, error) {
	slotOK := f.WALStatus != "" && f.WALStatus != "lost"
	if f.State == StateDisabledBy && slotOK && (f.Pending == nil || f.Pending.Conflict == nil) && !tried[f.Flow] {
		tried[f.Flow] = true
		for i := range d.Subscriptions[f.To] {
			if s := &d.Subscriptions[f.To][i]; s.Name == f.Subscription {
				if _, enabled, err := resumeOne(ctx, sess, s); err != nil {
					return "", fmt.Errorf("re-enable %s at %s: %w", s.Name, f.To, err)
				} else if enabled {
					resumed[f.Flow] = true
				}
			}
		}
	}
	if resumed[f.Flow] && f.State != StateStreaming && f.State != StateCatchingUp {
		return fmt.Sprintf("%s is %s (re-enabled: a lost connection disabled it)", f.Flow, f.State), nil
	}
	return "", nil
}

// Close closes the database connections the part opened.
func (p *Part) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess != nil {
		p.sess.Close()
		p.sess = nil
	}
}
