package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/sites"
)

// Verified is one table's rows of one owning site, as every site holds them.
type Verified struct {
	Table string `json:"table"`
	Owner string `json:"owner"`
	// Sums maps each site to what it holds of those rows.
	Sums  map[string]Sum `json:"sums"`
	Equal bool           `json:"equal"`
}

func (v Verified) String() string {
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(v.Sums)) {
		parts = append(parts, fmt.Sprintf("%s %s", s, v.Sums[s]))
	}
	return fmt.Sprintf("%s rows of %s: %s", v.Table, v.Owner, strings.Join(parts, "; "))
}

// watermark is the smallest UUIDv7 of the millisecond t: every key minted before t
// sorts below it (PostgreSQL compares uuid bytewise).
func watermark(t time.Time) uuid.UUID {
	var u uuid.UUID
	ms := t.UnixMilli()
	for i := 5; i >= 0; i-- {
		u[i] = byte(ms)
		ms >>= 8
	}
	u[6] = 0x70
	return u
}

// Verify checks, per replicated table and owning site, that every replicating site
// holds the same rows (count and checksum) of those minted before it started (the
// key is a UUIDv7: writes still flowing do not move what is compared). It waits up
// to wait for replication to bring them, and fails naming every difference.
func Verify(ctx context.Context, topo *sites.Topology, sess *Session, wait time.Duration) ([]Verified, error) {
	d, err := Build(topo)
	if err != nil {
		return nil, err
	}
	mark := quoteLiteral(watermark(time.Now()).String())
	deadline := time.Now().Add(wait)
	for {
		out, bad, err := verifyOnce(ctx, sess, d, mark)
		if err != nil || len(bad) == 0 {
			return out, err
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("%w after %s: %s", errNotConverged, wait, strings.Join(bad, "; "))
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func verifyOnce(ctx context.Context, sess *Session, d *Desired, mark string) ([]Verified, []string, error) {
	var out []Verified
	var bad []string
	names := d.SiteNames()
	for _, t := range d.Tables {
		for _, owner := range names {
			v := Verified{Table: t, Owner: owner, Sums: map[string]Sum{}, Equal: true}
			where := fmt.Sprintf("%s AND %s < %s", ownerFilter(owner), KeyColumn, mark)
			for _, s := range names {
				pool, err := sess.Pool(ctx, s)
				if err != nil {
					return nil, nil, err
				}
				sum, err := RowSum(ctx, pool, t, where)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %w", s, err)
				}
				v.Sums[s] = sum
				if sum != v.Sums[names[0]] {
					v.Equal = false
				}
			}
			if !v.Equal {
				bad = append(bad, v.String())
			}
			out = append(out, v)
		}
	}
	return out, bad, nil
}

// verify is the rebuild's verification step.
func (r *Rebuild) verify(ctx context.Context) error {
	r.status(r.Site+" verify", "comparing row counts and checksums per table and owner on %s", strings.Join(r.d.SiteNames(), ", "))
	v, err := Verify(ctx, r.topo, r.sess, r.opts.Wait)
	r.mu.Lock()
	r.Verified = v
	r.mu.Unlock()
	return err
}
