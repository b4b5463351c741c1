package postgres

import (
	"context"
	"sync"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// Part is PostgreSQL replication as one part of `sitectl plan` / `deploy`. Each
// site's Plan reads every replicating site first, so an unreachable site stops the
// replication steps of all of them. Steps of different sites may be applied in
// parallel: a subscription step waits (Options.Wait) for its publisher's
// publication.
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
		return nil, e
	}
	return pl.Steps(site.Name), nil
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

// Close closes the database connections the part opened.
func (p *Part) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess != nil {
		p.sess.Close()
		p.sess = nil
	}
}
