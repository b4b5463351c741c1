package postgres

import (
	"context"
	"errors"
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

// verifyOnce reads every site's sums at once, one scan per table grouped by owner,
// and compares them per table and owner.
func verifyOnce(ctx context.Context, sess *Session, d *Desired, mark string) ([]Verified, []string, error) {
	bySite, err := readSums(ctx, sess, d, d.SiteNames(), mark)
	if err != nil {
		return nil, nil, err
	}
	out, bad := compareSums(d, bySite)
	return out, bad, nil
}

// siteSums is one site's sums: table → owner → Sum.
type siteSums map[string]map[string]Sum

// readSums reads the sums of the rows keyed below mark at each of names, the
// sites in parallel, one scan per table grouped by owner.
func readSums(ctx context.Context, sess *Session, d *Desired, names []string, mark string) (map[string]siteSums, error) {
	type result struct {
		site string
		sums siteSums
		err  error
	}
	ch := make(chan result, len(names))
	for _, s := range names {
		go func(s string) {
			res := result{site: s, sums: siteSums{}}
			pool, err := sess.Pool(ctx, s)
			if err != nil {
				res.err = err
				ch <- res
				return
			}
			for _, t := range d.Tables {
				sums, err := rowSumsByOwner(ctx, pool, t, fmt.Sprintf("%s < %s", KeyColumn, mark))
				if err != nil {
					res.err = fmt.Errorf("%s: %w", s, err)
					break
				}
				res.sums[t] = sums
			}
			ch <- res
		}(s)
	}
	bySite := map[string]siteSums{}
	var errs []error
	for range names {
		r := <-ch
		if r.err != nil {
			errs = append(errs, r.err)
		}
		bySite[r.site] = r.sums
	}
	return bySite, errors.Join(errs...)
}

// compareSums compares every site's sums per table and owner; bad names each
// difference.
func compareSums(d *Desired, bySite map[string]siteSums) ([]Verified, []string) {
	names := d.SiteNames()
	var out []Verified
	var bad []string
	for _, t := range d.Tables {
		for _, owner := range names {
			v := Verified{Table: t, Owner: owner, Sums: map[string]Sum{}, Equal: true}
			for _, s := range names {
				sum := bySite[s][t][owner]
				if sum.Checksum == "" {
					sum.Checksum = "0"
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
	return out, bad
}

// peerSums are the peers' sums read while the rebuilt site's rows are copied
// (startPeerSums): at the verification only the rebuilt site is read then.
type peerSums struct {
	mark string
	done chan struct{}
	sums map[string]siteSums
	err  error
}

// startPeerSums reads, in the background, the sums of every peer of the rebuilt
// site below a watermark taken now. The rebuild's copies then run alongside the
// peers' scans instead of before them; nothing of the rows compared changes at a
// peer during a rebuild but late replication (then the verification reads
// everything again).
func (r *Rebuild) startPeerSums(ctx context.Context) {
	var peers []string
	for _, s := range r.d.SiteNames() {
		if s != r.Site {
			peers = append(peers, s)
		}
	}
	ps := &peerSums{mark: quoteLiteral(watermark(time.Now()).String()), done: make(chan struct{})}
	r.mu.Lock()
	r.peers = ps
	r.mu.Unlock()
	go func() {
		defer close(ps.done)
		ps.sums, ps.err = readSums(ctx, r.sess, r.d, peers, ps.mark)
	}()
}

// verifyWithPeers compares the rebuilt site's sums with the peers' read during
// the copy; false when they could not be used or differ (then everything is read
// again).
func (r *Rebuild) verifyWithPeers(ctx context.Context) bool {
	r.mu.Lock()
	ps := r.peers
	r.mu.Unlock()
	if ps == nil {
		return false
	}
	select {
	case <-ps.done:
	case <-ctx.Done():
		return false
	}
	if ps.err != nil {
		return false
	}
	mine, err := readSums(ctx, r.sess, r.d, []string{r.Site}, ps.mark)
	if err != nil {
		return false
	}
	all := maps.Clone(ps.sums)
	all[r.Site] = mine[r.Site]
	v, bad := compareSums(r.d, all)
	if len(bad) > 0 {
		r.status(r.Site+" verify", "differs from the peers' sums read during the copy (%s): reading every site again", strings.Join(bad, "; "))
		return false
	}
	r.mu.Lock()
	r.Verified = v
	r.mu.Unlock()
	return true
}

// verify is the rebuild's verification step.
func (r *Rebuild) verify(ctx context.Context) error {
	r.status(r.Site+" verify", "comparing row counts and checksums per table and owner on %s", strings.Join(r.d.SiteNames(), ", "))
	if r.verifyWithPeers(ctx) {
		return nil
	}
	v, err := Verify(ctx, r.topo, r.sess, r.opts.Wait)
	r.mu.Lock()
	r.Verified = v
	r.mu.Unlock()
	return err
}
