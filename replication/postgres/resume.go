package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/sites"
)

// Resumed is what Resume did.
type Resumed struct {
	Enabled []string    `json:"enabled"`
	Held    []*Conflict `json:"held,omitempty"`
}

// Resume enables the sitectl subscriptions that are disabled while no conflicting
// change waits for them. A lost connection disables a subscription that has
// disable_on_error (PostgreSQL 15 treats it like any apply error), so this is what a
// healed partition needs; a subscription stopped by a real conflict stays disabled
// and is returned in Held. only limits it to flows ending at those sites.
func Resume(ctx context.Context, topo *sites.Topology, sess *Session, only ...string) (*Resumed, error) {
	d, err := buildLive(ctx, topo, sess)
	if err != nil {
		return nil, err
	}
	if _, err := topo.Select(only...); err != nil {
		return nil, err
	}
	out := &Resumed{}
	var errs []error
	for _, site := range slices.Sorted(maps.Keys(d.Subscriptions)) {
		if len(only) > 0 && !contains(only, site) {
			continue
		}
		for i := range d.Subscriptions[site] {
			s := &d.Subscriptions[site][i]
			c, enabled, err := resumeOne(ctx, sess, s)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: resume %s: %w", site, s.Name, err))
			case c != nil:
				out.Held = append(out.Held, c)
			case enabled:
				out.Enabled = append(out.Enabled, s.Name)
			}
		}
	}
	return out, errors.Join(errs...)
}

func resumeOne(ctx context.Context, sess *Session, s *Subscription) (*Conflict, bool, error) {
	sub, err := sess.Pool(ctx, s.Site)
	if err != nil {
		return nil, false, err
	}
	var oid uint32
	var enabled bool
	err = sub.QueryRow(ctx, `SELECT oid, subenabled FROM pg_subscription WHERE subname = $1
		AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, s.Name).Scan(&oid, &enabled)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && enabled) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	pub, err := sess.Pool(ctx, s.Flow.From)
	if err != nil {
		return nil, false, fmt.Errorf("publisher unreachable, left disabled: %w", err)
	}
	pend, err := FindConflict(ctx, pub, sub, s, oid)
	if err != nil {
		return nil, false, err
	}
	if pend != nil && pend.Conflict != nil {
		return pend.Conflict, false, nil
	}
	if _, err := sub.Exec(ctx, "ALTER SUBSCRIPTION "+quoteIdent(s.Name)+" ENABLE"); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}
