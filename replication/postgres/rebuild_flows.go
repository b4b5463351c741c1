package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ownerFilter selects the rows one site owns.
func ownerFilter(site string) string { return OwnerColumn + " = " + quoteLiteral(site) }

// parseFilter reads a flow's row filter of the forms the topology writes, "site =
// 'X'" and "site <> 'X'" (sites.Topology): the operator and X. ok is false for any
// other filter.
func parseFilter(filter string) (op, owner string, ok bool) {
	for _, op := range []string{" = ", " <> "} {
		lit, found := strings.CutPrefix(filter, OwnerColumn+op)
		if !found || len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
			continue
		}
		v := strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")
		if quoteLiteral(v) == lit {
			return strings.TrimSpace(op), v, true
		}
	}
	return "", "", false
}

// filterAdmits reports whether rows owned by owner can match filter (a filter of
// another form than parseFilter reads admits every owner).
func filterAdmits(filter, owner string) bool {
	op, v, ok := parseFilter(filter)
	switch {
	case !ok:
		return true
	case op == "=":
		return v == owner
	default:
		return v != owner
	}
}

// filtersDisjoint reports whether no row, whatever its owner, can match both
// filters: "site = 'X'" against "site = 'Y'" (X ≠ Y) or against "site <> 'X'".
// Filters of other forms are never disjoint.
func filtersDisjoint(a, b string) bool {
	opA, va, okA := parseFilter(a)
	opB, vb, okB := parseFilter(b)
	switch {
	case !okA || !okB || (opA == "<>" && opB == "<>"):
		return false
	case opA == "=" && opB == "=":
		return va != vb
	default:
		return va == vb
	}
}

// owners lists the sites whose rows may match filter: a flow never carries the
// subscriber's own rows, and a spoke's flow only the spoke's.
func (r *Rebuild) owners(filter string) []string {
	var out []string
	for _, s := range r.d.SiteNames() {
		if filterAdmits(filter, s) {
			out = append(out, s)
		}
	}
	return out
}

// catchUp lists the owners whose rows the publication's subscriber may lack and
// must be compared with the site's before its subscription starts without copy.
// The site's own rows at the peer they were copied back from are left out: that
// copy made them equal, nothing writes them anywhere until the rebuild ends, and
// the verification compares them on every site; skipped lists them.
func (r *Rebuild) catchUp(pub *Publication) (owners, skipped []string) {
	for _, o := range r.owners(pub.Flow.Filter) {
		// A restored copy (restore --replace) adds rows of the site that its
		// source lacks: then they are compared and copied like any other owner's.
		if o == r.Site && pub.Flow.To == r.OwnSource && r.opts.Restored == nil {
			skipped = append(skipped, o)
			continue
		}
		owners = append(owners, o)
	}
	return owners, skipped
}

// needsPause reports whether a row the site's subscriptions bring can match one of
// its publications (the hub republishing a spoke's rows to the other spokes): then
// the subscriptions are paused while the slots are made and the peers caught up,
// or a row arriving between the two would be lost or copied twice. A spoke's
// subscription brings the other sites' rows, its publication carries only its own:
// nothing to pause.
func (r *Rebuild) needsPause() bool {
	for _, s := range r.d.Subscriptions[r.Site] {
		for _, p := range r.d.Publications[r.Site] {
			if !filtersDisjoint(s.Flow.Filter, p.Flow.Filter) {
				return true
			}
		}
	}
	return false
}

// subscribe creates the site's subscription with its initial copy (the normal
// create: a stale slot of that name on the publisher is replaced) and returns at
// once: the copy runs while the site's own rows are copied back (other owners' rows,
// so the two never touch the same row); waitCopied waits for it.
func (r *Rebuild) subscribe(s *Subscription) func(context.Context) error {
	return func(ctx context.Context) error {
		pool, err := r.sess.Pool(ctx, r.Site)
		if err != nil {
			return err
		}
		if has, err := hasSubscription(ctx, pool, s.Name); err != nil || has {
			return err
		}
		here, err := heldRowsPool(ctx, pool, r.d.Tables, s.Flow.Filter)
		if err != nil {
			return err
		}
		r.mu.Lock()
		if r.subStart == nil {
			r.subStart = map[string]subStart{}
		}
		r.subStart[s.Name] = subStart{rows: here, at: time.Now()}
		r.mu.Unlock()
		return r.p.apply(ctx, r.topo, Op{Kind: OpCreateSubscription, Site: r.Site, Phase: PhaseSubscribe, Subscription: s, WaitPublisher: true})
	}
}

// subStart is what the site held of a subscription's rows when subscribe created
// it, and when.
type subStart struct {
	rows int64
	at   time.Time
}

// waitCopied waits until every table of the subscription is ready (total: the rows
// the publisher held at plan time, for the progress line).
func (r *Rebuild) waitCopied(s *Subscription, total int64) func(context.Context) error {
	return func(ctx context.Context) error {
		pool, err := r.sess.Pool(ctx, r.Site)
		if err != nil {
			return err
		}
		return r.waitSynced(ctx, pool, s, total)
	}
}

// syncPoll is how often waitSynced reads the subscription's table states (a
// catalog read); the rows here are counted at most once a second.
const syncPoll = 50 * time.Millisecond

// waitSynced waits until every table of the subscription is ready, failing when
// it is disabled by an error or copies nothing for Wait.
func (r *Rebuild) waitSynced(ctx context.Context, pool *pgxpool.Pool, s *Subscription, total int64) error {
	r.mu.Lock()
	st, ok := r.subStart[s.Name]
	r.mu.Unlock()
	began, start := st.at, st.rows
	if !ok {
		began, start = time.Now(), -1
	}
	var here, last int64 = 0, -1
	var countedAt time.Time
	progressAt := time.Now()
	key := r.Site + " " + s.Name
	for {
		var enabled bool
		var pending int
		err := pool.QueryRow(ctx, `SELECT s.subenabled, count(*) FILTER (WHERE sr.srsubstate <> 'r')
			FROM pg_subscription s LEFT JOIN pg_subscription_rel sr ON sr.srsubid = s.oid
			WHERE s.subname = $1 GROUP BY s.subenabled`, s.Name).Scan(&enabled, &pending)
		if err != nil {
			return fmt.Errorf("%s: read subscription %s: %w", r.Site, s.Name, err)
		}
		if pending == 0 || time.Since(countedAt) >= time.Second {
			if here, err = heldRowsPool(ctx, pool, r.d.Tables, s.Flow.Filter); err != nil {
				return err
			}
			countedAt = time.Now()
			if start < 0 {
				start = here
			}
			r.status(key, "copying from %s: %s", s.Flow.From, rate(here-start, here, total, time.Since(began)))
		}
		// Every table ready is done, enabled or not: a resumed rebuild finds the
		// subscription its own pause step disabled after the copy (the resume step
		// enables it again, and verify judges the rows).
		switch {
		case pending == 0:
			r.record(Copied{Table: "(subscription " + s.Name + ")", Where: s.Flow.Filter, From: s.Flow.From, To: r.Site, Rows: here - start, Took: time.Since(began)})
			return nil
		case !enabled:
			return fmt.Errorf("%s: subscription %s was disabled by an error during its initial copy (sitectl replication status shows it)", r.Site, s.Name)
		}
		if here != last {
			last, progressAt = here, time.Now()
		} else if time.Since(progressAt) > r.opts.Wait {
			return fmt.Errorf("%s: subscription %s copied nothing for %s (%d tables not ready; sitectl replication status shows why)", r.Site, s.Name, r.opts.Wait, pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(syncPoll):
		}
	}
}
