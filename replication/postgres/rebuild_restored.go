package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
)

// RestoredCopy is a restored copy of the rebuilt site's database (a scratch server
// Barman recovered as of a time: sitectl restore --replace). The rebuild copies
// back from it the site's own rows that are missing after the copy from the peer.
type RestoredCopy struct {
	// Label names it in the plan, progress and errors ("restored copy as of T").
	Label string
	Pool  *pgxpool.Pool
}

// planRestoredRows plans, after the site's own rows came back from a peer, copying
// the site's rows the restored copy holds and the site still lacks: rows deleted
// everywhere since the copy's time. A row the peer holds keeps the peer's version
// (it may be newer); other sites' rows are never taken from the copy. The rows
// then reach the peers through the next step ("rows <peer> lacks").
func (r *Rebuild) planRestoredRows(ctx context.Context) error {
	rc := r.opts.Restored
	if rc == nil {
		return nil
	}
	where := ownerFilter(r.Site)
	n, err := heldRowsPool(ctx, rc.Pool, r.d.Tables, where)
	if err != nil {
		return fmt.Errorf("%s: %w", rc.Label, err)
	}
	r.add(r.Site, plan.Create, "rows of "+r.Site+" from the "+rc.Label, []string{fmt.Sprintf("of its %d rows (%s), those still missing here", n, where)},
		"a row the peer holds keeps the peer's version; never deletes or changes a row", func(ctx context.Context) error {
			dst, err := r.sess.Pool(ctx, r.Site)
			if err != nil {
				return err
			}
			for _, t := range r.d.Tables {
				key, began := fmt.Sprintf("%s %s %s", r.Site, t, rc.Label), time.Now()
				c, err := copyMissing(ctx, copyEnd{rc.Label, rc.Pool}, copyEnd{r.Site, dst}, t, where, func(n int64) {
					r.status(key, "rows of %s from the %s: %s", r.Site, rc.Label, copyRate(n, time.Since(began)))
				})
				if err != nil {
					return err
				}
				if c.Rows > 0 || c.Merged {
					r.record(c)
				}
			}
			return nil
		})
	return nil
}
