package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// recordGeneration writes the rebuilt generation, in state, at every site.
func (r *Rebuild) recordGeneration(state string) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, n := range r.d.SiteNames() {
			g := Generation{Site: r.Site, Generation: r.Generation, State: state}
			if err := r.onSite(ctx, n, func(p *pgxpool.Pool) error { return writeGeneration(ctx, p, g) }); err != nil {
				return err
			}
		}
		return nil
	}
}

// dropSubscription drops a peer's subscription to the old instance, without
// touching its slot (gone with the old instance).
func (r *Rebuild) dropSubscription(site, name string) func(context.Context) error {
	return func(ctx context.Context) error {
		return r.onSite(ctx, site, func(p *pgxpool.Pool) error { return dropSubscriptionOn(ctx, p, name) })
	}
}

// dropPeerSlot drops a slot on a peer (its walsender stopped first), under the
// slot's lock.
func (r *Rebuild) dropPeerSlot(site, name string) func(context.Context) error {
	return func(ctx context.Context) error {
		lk, unlock, err := r.p.lockSlot(ctx, site, name, false)
		if err != nil {
			return err
		}
		defer unlock()
		if err := dropSlot(ctx, lk, name); err != nil {
			return fmt.Errorf("%s: drop slot %s: %w", site, name, err)
		}
		return nil
	}
}

func dropSubscriptionOn(ctx context.Context, pool *pgxpool.Pool, name string) error {
	if has, err := hasSubscription(ctx, pool, name); err != nil || !has {
		return err
	}
	q := quoteIdent(name)
	return execAll(ctx, pool, []string{"ALTER SUBSCRIPTION " + q + " DISABLE", "ALTER SUBSCRIPTION " + q + " SET (slot_name = NONE)", "DROP SUBSCRIPTION " + q})
}

// rate is "1200 rows copied (4500 of 5000 here), 800 rows/s".
func rate(copied, here, total int64, took time.Duration) string {
	s := fmt.Sprintf("%d rows copied (%d of %d here)", copied, here, total)
	if secs := took.Seconds(); secs >= 0.5 {
		s += fmt.Sprintf(", %.0f rows/s", float64(copied)/secs)
	}
	return s
}

// copyRate is "1200 rows copied, 800 rows/s".
func copyRate(n int64, took time.Duration) string {
	s := fmt.Sprintf("%d rows copied", n)
	if secs := took.Seconds(); secs >= 0.5 {
		s += fmt.Sprintf(", %.0f rows/s", float64(n)/secs)
	}
	return s
}

func heldRowsPool(ctx context.Context, pool *pgxpool.Pool, tables []string, where string) (int64, error) {
	var total int64
	for _, t := range tables {
		var n int64
		if err := pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", quoteTable(t), where)).Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// copyRows copies, table by table and owner by owner, the rows matching filter
// that from holds and to lacks.
func (r *Rebuild) copyRows(ctx context.Context, from, to string, owners []string, filter string) error {
	src, err := r.sess.Pool(ctx, from)
	if err != nil {
		return err
	}
	dst, err := r.sess.Pool(ctx, to)
	if err != nil {
		return err
	}
	for _, t := range r.d.Tables {
		for _, o := range owners {
			where := fmt.Sprintf("(%s) AND %s", filter, ownerFilter(o))
			key := fmt.Sprintf("%s %s %s", to, t, o)
			began := time.Now()
			c, err := copyMissing(ctx, copyEnd{from, src}, copyEnd{to, dst}, t, where, func(n int64) {
				r.status(key, "rows of %s from %s: %s", o, from, copyRate(n, time.Since(began)))
			})
			if err != nil {
				return err
			}
			if c.Rows > 0 || c.Merged {
				r.status(key, "rows of %s from %s: %d copied in %s (%.0f rows/s)", o, from, c.Rows, c.Took.Round(time.Millisecond), float64(c.Rows)/max(c.Took.Seconds(), 0.001))
				r.record(c)
			}
		}
	}
	return nil
}

// pause disables (or enables) the site's subscriptions, and on disabling waits for
// their apply workers to stop.
func (r *Rebuild) pause(names []string, disable bool) func(context.Context) error {
	return func(ctx context.Context) error {
		return r.onSite(ctx, r.Site, func(pool *pgxpool.Pool) error {
			verb := "ENABLE"
			if disable {
				verb = "DISABLE"
			}
			for _, n := range names {
				if _, err := pool.Exec(ctx, "ALTER SUBSCRIPTION "+quoteIdent(n)+" "+verb, pgx.QueryExecModeSimpleProtocol); err != nil {
					return err
				}
			}
			if !disable {
				return nil
			}
			deadline := time.Now().Add(r.opts.Wait)
			for {
				var running int
				if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_subscription WHERE subname = ANY($1) AND pid IS NOT NULL`, names).Scan(&running); err != nil {
					return err
				}
				if running == 0 {
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%d apply workers still run %s after the subscriptions were disabled", running, r.opts.Wait)
				}
				time.Sleep(syncPoll)
			}
		})
	}
}

func (r *Rebuild) createPublication(ctx context.Context, pub *Publication) error {
	return r.onSite(ctx, r.Site, func(pool *pgxpool.Pool) error {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_publication WHERE pubname = $1`, pub.Name).Scan(&n); err != nil || n > 0 {
			return err
		}
		_, err := pool.Exec(ctx, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish = %s)", quoteIdent(pub.Name), tablesSQL(pub.Tables), quoteLiteral(Publish)))
		return err
	})
}

// makeSlot makes the flow's slot on the site, now that the site holds every row
// its subscriber should get by copy: what the slot streams is only what comes
// after. A slot of that name with no subscription at the subscriber (an earlier,
// interrupted run) is made again.
func (r *Rebuild) makeSlot(pub *Publication) func(context.Context) error {
	return func(ctx context.Context) error {
		sub, err := r.sess.Pool(ctx, pub.Flow.To)
		if err != nil {
			return err
		}
		name := pub.SlotName()
		if has, err := hasSubscription(ctx, sub, name); err != nil || has {
			return err
		}
		lk, unlock, err := r.p.lockSlot(ctx, r.Site, name, false)
		if err != nil {
			return err
		}
		defer unlock()
		s := &Subscription{Site: pub.Flow.To, Name: name, Flow: pub.Flow}
		if err := dropSlot(ctx, lk, name); err != nil {
			return fmt.Errorf("%s: drop the earlier slot %s: %w", r.Site, name, err)
		}
		_, err = createSlot(ctx, lk, s)
		return err
	}
}

// subscribeNoCopy creates the peer's subscription on the slot makeSlot made,
// without initial copy.
func (r *Rebuild) subscribeNoCopy(pub *Publication) func(context.Context) error {
	return func(ctx context.Context) error {
		var s *Subscription
		for i := range r.d.Subscriptions[pub.Flow.To] {
			if c := &r.d.Subscriptions[pub.Flow.To][i]; c.Name == pub.SlotName() {
				s = c
			}
		}
		if s == nil {
			return fmt.Errorf("%s has no subscription %s in the topology", pub.Flow.To, pub.Name)
		}
		pool, err := r.sess.Pool(ctx, s.Site)
		if err != nil {
			return err
		}
		if has, err := hasSubscription(ctx, pool, s.Name); err != nil || has {
			return err
		}
		conninfo, err := s.Conn.Render()
		if err != nil {
			return err
		}
		stmt := fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s WITH (disable_on_error = true, copy_data = false, create_slot = false, slot_name = %s, enabled = true)",
			quoteIdent(s.Name), quoteLiteral(conninfo), quoteIdent(s.Publication), quoteLiteral(s.Name))
		if err := execLimited(ctx, pool, stmt, true, s.Flow.From); err != nil {
			return fmt.Errorf("%s: create subscription %s: %w", s.Site, s.Name, err)
		}
		return nil
	}
}

// errNotConverged is a verification that found different rows somewhere.
var errNotConverged = errors.New("rows differ")
