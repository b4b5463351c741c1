package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/sites"
)

// GenRetired marks, in an old instance's own row, that its rows were reconciled
// into the rebuilt site and it must never serve again.
const GenRetired = "retired"

// Reconciled is what ReconcileOld did.
type Reconciled struct {
	Site string `json:"site"`
	// OldGeneration and Generation are the old instance's and the rebuilt site's.
	OldGeneration int64      `json:"old_generation"`
	Generation    int64      `json:"generation"`
	Copied        []Copied   `json:"copied"`
	Verified      []Verified `json:"verified,omitempty"`
}

// Rows is the number of rows copied from the old instance.
func (r *Reconciled) Rows() int64 {
	var n int64
	for _, c := range r.Copied {
		n += c.Rows
	}
	return n
}

// ReconcileOld copies into the rebuilt site the rows it owns that its old instance
// (old, reached by the caller) acknowledged and the rebuilt site lacks — UUIDv7 keys
// cannot collide, and nothing at the rebuilt site is changed or deleted — so they
// replicate from there to every site; then it retires the old instance (its
// subscriptions disabled, its own generation row marked retired) and verifies
// every site. The old instance must be of a lower generation than the rebuilt site.
func ReconcileOld(ctx context.Context, topo *sites.Topology, sess *Session, site string, old *pgxpool.Pool, wait time.Duration) (*Reconciled, error) {
	d, err := Build(topo)
	if err != nil {
		return nil, err
	}
	pool, err := sess.Pool(ctx, site)
	if err != nil {
		return nil, err
	}
	newGens, err := ReadGenerations(ctx, pool)
	if err != nil {
		return nil, err
	}
	oldGens, err := ReadGenerations(ctx, old)
	if err != nil {
		return nil, fmt.Errorf("the old instance: read %s: %w", GenerationTable, err)
	}
	r := &Reconciled{Site: site, OldGeneration: oldGens[site].Generation, Generation: newGens[site].Generation}
	if newGens[site].State != GenActive || r.Generation <= r.OldGeneration {
		return r, fmt.Errorf("site reconcile %s: the instance given as old is generation %d and %s's database generation %d (%s): only an old instance of a rebuilt site is reconciled (finish the rebuild first: sitectl site rebuild %s)",
			site, r.OldGeneration, site, r.Generation, orNone(newGens[site].State), site)
	}
	for _, t := range d.Tables {
		c, err := copyMissing(ctx, copyEnd{"old " + site, old}, copyEnd{site, pool}, t, ownerFilter(site), nil)
		if err != nil {
			return r, fmt.Errorf("site reconcile %s: %w", site, err)
		}
		r.Copied = append(r.Copied, c)
	}
	if err := retire(ctx, old, site, r.OldGeneration); err != nil {
		return r, fmt.Errorf("site reconcile %s: retire the old instance: %w", site, err)
	}
	r.Verified, err = Verify(ctx, topo, sess, wait)
	return r, err
}

// retire disables the old instance's sitectl subscriptions and marks it retired.
func retire(ctx context.Context, old *pgxpool.Pool, site string, gen int64) error {
	rows, err := old.Query(ctx, `SELECT subname FROM pg_subscription WHERE subname LIKE $1`, Prefix+"%")
	if err != nil {
		return err
	}
	subs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, s := range subs {
		if _, err := old.Exec(ctx, "ALTER SUBSCRIPTION "+quoteIdent(s)+" DISABLE", pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
	}
	return writeGeneration(ctx, old, Generation{Site: site, Generation: gen, State: GenRetired})
}
