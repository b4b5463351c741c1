package siteloss

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// OldReturn is what happened when the lost site's old instance came back after the
// rebuild.
type OldReturn struct {
	Address    string    `json:"address"`
	ReturnedAt time.Time `json:"returned_at"`
	// Fenced: plan (what deploy runs first) refused the old instance, naming its
	// own generation and the one its peers record.
	Fenced             bool   `json:"fenced"`
	OwnGeneration      int64  `json:"own_generation"`
	RecordedGeneration int64  `json:"recorded_generation"`
	Refusal            string `json:"refusal"`
	// Reconciled, Deleted and Changed are site reconcile's rows copied, and left
	// alone as deleted since the rebuild or changed.
	Reconciled   int64     `json:"reconciled_rows"`
	Deleted      int64     `json:"deleted_since_rebuild"`
	Changed      int64     `json:"changed"`
	ReconciledAt time.Time `json:"reconciled_at"`
	// Recovered counts the RPO's rows (acknowledged at the lost site, reached no
	// other site) at every site after the reconcile; RPOAfter those still missing.
	Recovered int `json:"rpo_rows_recovered"`
	RPOAfter  int `json:"rpo_after"`
}

// oldReturns brings the old instance back, checks a plan pointed at it is refused
// as fenced, reconciles its rows into the rebuilt site and counts the RPO's rows
// now at every site; the old instance is then retired.
func (r *Report) oldReturns(ctx context.Context, ret Returner) error {
	host, port, err := ret.Return(ctx, r.Site)
	if err != nil {
		return fmt.Errorf("bring the old %s back: %w", r.Site, err)
	}
	o := &OldReturn{Address: net.JoinHostPort(host, strconv.Itoa(port)), ReturnedAt: time.Now().UTC()}
	r.OldReturn = o
	defer func() {
		if err := ret.Retire(context.WithoutCancel(ctx), r.Site); err != nil {
			r.Failed = append(r.Failed, fmt.Sprintf("retire the old %s: %v", r.Site, err))
		}
	}()
	r.status("old", "the old %s is back at %s", r.Site, o.Address)
	topo, oldSite := pointedAt(r.topo, r.Site, host, port)
	sess := postgres.NewSession(topo)
	p, err := postgres.Plan(ctx, topo, sess, postgres.Options{Wait: r.opts.Wait})
	sess.Close()
	if err == nil {
		err = p.Err()
	}
	var fenced *postgres.FencedError
	if errors.As(err, &fenced) && fenced.Site == r.Site {
		o.Fenced, o.OwnGeneration, o.RecordedGeneration, o.Refusal = true, fenced.Own, fenced.Recorded, fenced.Error()
	} else {
		o.Refusal = fmt.Sprint(err)
		r.Failed = append(r.Failed, fmt.Sprintf("plan pointed at the old %s was not refused as fenced: %v", r.Site, err))
	}
	old, err := postgres.Connect(ctx, oldSite)
	if err != nil {
		return fmt.Errorf("connect to the old %s at %s: %w", r.Site, o.Address, err)
	}
	defer old.Close()
	r.status("old", "site reconcile %s from its old instance", r.Site)
	rec, err := postgres.ReconcileOld(ctx, r.topo, r.sess, r.Site, old, r.opts.Wait)
	if rec != nil {
		o.Reconciled = rec.Rows()
		o.Deleted, o.Changed = rec.Skipped()
	}
	o.ReconciledAt = time.Now().UTC()
	if err != nil {
		return fmt.Errorf("site reconcile %s: %w", r.Site, err)
	}
	return r.countRecovered(ctx)
}

// countRecovered waits until the RPO's rows are at every site, or Wait passes.
func (r *Report) countRecovered(ctx context.Context) error {
	o := r.OldReturn
	deadline := time.Now().Add(r.opts.Wait)
	for {
		everywhere := map[string]int{}
		for _, s := range r.topo.SiteNames() {
			ids, err := r.runIDs(ctx, s, r.Site)
			if err != nil {
				return fmt.Errorf("read %s's rows at %s: %w", r.Site, s, err)
			}
			for _, w := range r.written[r.Site] {
				if !r.reached[w.id] && ids[w.id] {
					everywhere[w.id.String()]++
				}
			}
		}
		o.Recovered = 0
		for _, n := range everywhere {
			if n == len(r.topo.SiteNames()) {
				o.Recovered++
			}
		}
		o.RPOAfter = r.RPORows - o.Recovered
		if o.RPOAfter == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after site reconcile, %d of the %d rows %s acknowledged that had reached no other site are not at every site", o.RPOAfter, r.RPORows, r.Site)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// pointedAt is the topology with site's database at host:port (the old
// instance), and that site.
func pointedAt(topo *sites.Topology, site, host string, port int) (*sites.Topology, *sites.Site) {
	t := *topo
	t.Sites = make([]*sites.Site, len(topo.Sites))
	var out *sites.Site
	for i, s := range topo.Sites {
		t.Sites[i] = s
		if s.Name == site {
			c := *s
			c.Postgres.Host, c.Postgres.Port = host, port
			t.Sites[i], out = &c, &c
		}
	}
	return &t, out
}
