// Package siteloss is the site-loss drill: every site writes its own rows, one site
// is lost for good (its database destroyed), the others keep writing, the lost site
// comes back empty and is rebuilt from its peers (replication/postgres's rebuild),
// and every acknowledged write that reached another site before the loss is
// verified at every site. It reports RPO (writes the lost site acknowledged that
// never left it: count and time window) and RTO (loss → rebuilt and verified).
package siteloss

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/replication/keys"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// Loser destroys a site's database and brings an empty one up in its place, at the
// same address with the same configuration (the lab: the database service stopped
// and its volume deleted, then started again).
type Loser interface {
	// Lose destroys the site's database: its server and its data.
	Lose(ctx context.Context, site string) error
	// Replace starts an empty database for the site; it returns once it answers.
	Replace(ctx context.Context, site string) error
}

// Returner is a Loser that can keep a lost database's data and bring it back: the
// old instance of a long partition taken for a loss, or of disks recovered.
type Returner interface {
	Loser
	// SetAside takes the site's database away, keeping its data (Lose's place).
	SetAside(ctx context.Context, site string) error
	// Return starts the set-aside database again at an address of its own,
	// reached with the site's database, user and password.
	Return(ctx context.Context, site string) (host string, port int, err error)
	// Retire stops the returned old database for good.
	Retire(ctx context.Context, site string) error
}

// Options choose the lost site and the load.
type Options struct {
	Site string
	// Writes is the rows each site writes before the loss, and each surviving site
	// during it (default 1000).
	Writes int
	// Batch is the rows per transaction (default 1: every row its own
	// transaction, acknowledged alone); a batch is one multi-row INSERT,
	// acknowledged as a whole.
	Batch int
	Loser Loser
	// Wait bounds the rebuild's waits without progress and the verification.
	Wait time.Duration
	// Progress receives live lines (key, text); nil: silent.
	Progress func(key, text string)
	// OldReturns: the lost database's data is kept (Loser must be a Returner);
	// after the rebuild the old instance comes back, plan must refuse it (fenced)
	// and site reconcile must bring its unreplicated rows to every site: RPO 0.
	OldReturns bool
	// Mongo, when set, loses the site's MongoDB members with its database and
	// rebuilds them after it (site rebuild --mongo's part).
	Mongo *Mongo
}

// Window is a span of write times.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Report is what the drill found.
type Report struct {
	Site    string    `json:"site"`
	Run     string    `json:"run"`
	Started time.Time `json:"started"`
	// Writes and Batch are the load: rows each site wrote per phase, rows per
	// transaction.
	Writes int       `json:"writes"`
	Batch  int       `json:"batch"`
	LostAt time.Time `json:"lost_at"`
	// VerifiedAt is when the rebuilt site was verified; RTOSeconds the time from
	// the loss to it.
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// ReplacedAt is when the empty database answered in the lost one's place.
	ReplacedAt time.Time `json:"replaced_at,omitzero"`
	RTOSeconds float64   `json:"rto_seconds,omitempty"`
	// Acknowledged counts, per site, the writes its database acknowledged (before
	// and, for the survivors, during the loss).
	Acknowledged map[string]int `json:"acknowledged"`
	// RPORows are the writes the lost site acknowledged that had reached no other
	// site at the moment of loss; RPOWindow when they were written.
	RPORows   int     `json:"rpo_rows"`
	RPOWindow *Window `json:"rpo_window,omitempty"`
	// Missing lists acknowledged writes that should be at a site and are not.
	Missing  []string            `json:"missing,omitempty"`
	Rebuild  *postgres.Rebuild   `json:"rebuild,omitempty"`
	Verified []postgres.Verified `json:"verified,omitempty"`
	// OldReturn is the old instance's return (Options.OldReturns).
	OldReturn *OldReturn `json:"old_return,omitempty"`
	// Mongo is the MongoDB part (Options.Mongo).
	Mongo *MongoReport `json:"mongo,omitempty"`
	// PostgresRTOSeconds is the loss to PostgreSQL rebuilt and verified, when
	// RTOSeconds also covers the MongoDB part.
	PostgresRTOSeconds float64 `json:"postgres_rto_seconds,omitempty"`
	// Recovery is what was done to bring the site back after the drill stopped
	// between the loss and the end of the rebuild (Recover).
	Recovery *Recovery `json:"recovery,omitempty"`
	Failed   []string  `json:"failed,omitempty"`
	Passed   bool      `json:"passed"`

	loseTried bool // the loss was started: the site's database may be gone
	rebuilt   bool // the site's rebuild ran to its end

	written map[string][]written // per site, in order
	reached map[uuid.UUID]bool   // the lost site's keys found at a peer after the loss
	sess    *postgres.Session
	topo    *sites.Topology
	opts    Options
}

type written struct {
	id uuid.UUID
	at time.Time
}

// Summary is the report's one-line verdict.
func (r *Report) Summary() string {
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED: " + strings.Join(r.Failed, "; ")
	}
	return fmt.Sprintf("site-loss drill of %s %s: RTO %.1fs, RPO %d rows%s%s", r.Site, verdict, r.RTOSeconds, r.RPORows, r.rpoWindow(), r.Mongo.summary())
}

// summary is the MongoDB part's words in the summary ("" without it).
func (m *MongoReport) summary() string {
	switch {
	case m == nil:
		return ""
	case !m.rebuilt:
		return "; MongoDB members not rebuilt"
	}
	n, kept := 0, ""
	if m.Rebuild != nil {
		n = len(m.Rebuild.Reconfigs)
		if k := len(m.Rebuild.Kept); k > 0 {
			kept = fmt.Sprintf(", %d vote(s) kept (the primary needed them)", k)
		}
	}
	return fmt.Sprintf("; MongoDB members rebuilt (%d reconfig(s), one member each%s; caught up and voting %.1fs after the loss)", n, kept, m.RTOSeconds)
}

func (r *Report) rpoWindow() string {
	if r.RPOWindow == nil {
		return ""
	}
	return fmt.Sprintf(" (written %s – %s)", r.RPOWindow.From.Format(time.RFC3339Nano), r.RPOWindow.To.Format(time.RFC3339Nano))
}

// Run runs the drill. The returned report is never nil; err is an error that
// stopped the drill (a failed verdict is in the report, not in err).
func Run(ctx context.Context, topo *sites.Topology, sess *postgres.Session, o Options) (*Report, error) {
	if o.Writes <= 0 {
		o.Writes = 1000
	}
	if o.Wait == 0 {
		o.Wait = 2 * time.Minute
	}
	o.Batch = max(o.Batch, 1)
	r := &Report{Site: o.Site, Writes: o.Writes, Batch: o.Batch, Run: "siteloss-" + uuid.Must(uuid.NewV7()).String()[:18], Started: time.Now().UTC(),
		Acknowledged: map[string]int{}, written: map[string][]written{}, reached: map[uuid.UUID]bool{}, sess: sess, topo: topo, opts: o}
	if topo.Site(o.Site) == nil {
		return r, fmt.Errorf("site-loss drill: --site %q is not a site (sites: %s)", o.Site, strings.Join(topo.SiteNames(), ", "))
	}
	if o.Loser == nil {
		return r, errors.New("site-loss drill: no way to destroy a site's database here")
	}
	if err := r.preflight(ctx); err != nil {
		return r, err
	}
	ret, canReturn := o.Loser.(Returner)
	if o.OldReturns && !canReturn {
		return r, errors.New("site-loss drill: bringing the old instance back needs its data kept, which this loser cannot do")
	}
	names := topo.SiteNames()
	r.writeAll(ctx, names)
	if err := ctx.Err(); err != nil {
		return r, err // stopped before the loss: nothing to recover
	}
	if len(r.Failed) > 0 {
		// A site that cannot write now would make the verdict meaningless: no
		// database is destroyed.
		r.Failed = append(r.Failed, "stopped before the loss: nothing was destroyed")
		return r, nil
	}
	r.loseTried = true
	if o.OldReturns {
		r.status("lose", "taking %s's database away (its data kept)", o.Site)
		if err := ret.SetAside(ctx, o.Site); err != nil {
			return r, fmt.Errorf("lose %s: %w", o.Site, err)
		}
	} else {
		r.status("lose", "destroying %s's database", o.Site)
		if err := o.Loser.Lose(ctx, o.Site); err != nil {
			return r, fmt.Errorf("lose %s: %w", o.Site, err)
		}
	}
	r.LostAt = time.Now().UTC()
	if err := r.loseMongo(ctx); err != nil {
		return r, err
	}
	if err := r.findReached(ctx); err != nil {
		return r, err
	}
	r.writeAll(ctx, slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == o.Site }))
	r.status("lose", "starting an empty database for %s", o.Site)
	if err := o.Loser.Replace(ctx, o.Site); err != nil {
		return r, fmt.Errorf("replace %s: %w", o.Site, err)
	}
	r.ReplacedAt = time.Now().UTC()
	if err := r.replaceMongo(ctx); err != nil {
		return r, err
	}
	if err := r.rebuild(ctx); err != nil {
		r.Failed = append(r.Failed, err.Error())
		return r, nil
	}
	r.check(ctx)
	r.VerifiedAt = time.Now().UTC()
	r.RTOSeconds = r.VerifiedAt.Sub(r.LostAt).Seconds()
	if r.Mongo != nil {
		if err := r.rebuildMongo(ctx); err != nil {
			r.Failed = append(r.Failed, err.Error())
		} else {
			r.PostgresRTOSeconds = r.RTOSeconds
			r.RTOSeconds = r.Mongo.RebuiltAt.Sub(r.LostAt).Seconds()
		}
	}
	if o.OldReturns {
		if err := r.oldReturns(ctx, ret); err != nil {
			r.Failed = append(r.Failed, err.Error())
		}
	}
	r.Passed = len(r.Failed) == 0
	return r, nil
}

func (r *Report) status(key, format string, args ...any) {
	if r.opts.Progress != nil {
		r.opts.Progress(key, fmt.Sprintf(format, args...))
	}
}

// preflight: every site answers and every flow works.
func (r *Report) preflight(ctx context.Context) error {
	st, err := postgres.Status(ctx, r.topo, r.sess)
	if err != nil {
		return fmt.Errorf("site-loss drill preflight: %w", err)
	}
	if !st.Healthy() {
		return fmt.Errorf("site-loss drill preflight: replication is not healthy (%s); sitectl replication status shows why", st.Summary())
	}
	return nil
}

// writeAll has each site write Writes rows of the run, in parallel.
func (r *Report) writeAll(ctx context.Context, names []string) {
	type res struct {
		site string
		w    []written
		err  error
	}
	out := make(chan res, len(names))
	for _, s := range names {
		go func(s string) {
			w, err := r.writeSite(ctx, s)
			out <- res{s, w, err}
		}(s)
	}
	for range names {
		x := <-out
		r.written[x.site] = append(r.written[x.site], x.w...)
		r.Acknowledged[x.site] += len(x.w)
		if x.err != nil {
			r.Failed = append(r.Failed, fmt.Sprintf("%s could not write its own rows: %v", x.site, x.err))
		}
	}
}

func (r *Report) writeSite(ctx context.Context, site string) ([]written, error) {
	pool, err := r.sess.Pool(ctx, site)
	if err != nil {
		return nil, err
	}
	gen, err := keys.NewGenerator(site)
	if err != nil {
		return nil, err
	}
	batch := max(r.opts.Batch, 1)
	var out []written
	for i := 0; i < r.opts.Writes; i += batch {
		n := min(batch, r.opts.Writes-i)
		ids := make([]uuid.UUID, n)
		seqs := make([]int32, n)
		for j := range n {
			k, err := gen.New()
			if err != nil {
				return out, err
			}
			ids[j], seqs[j] = k.ID, int32(r.Acknowledged[site]+i+j)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO public.sitectl_drill (id, site, run, seq)
SELECT id, $2, $3, seq FROM unnest($1::uuid[], $4::int[]) AS w(id, seq)`, ids, site, r.Run, seqs); err != nil {
			return out, err
		}
		at := time.Now().UTC()
		for _, id := range ids {
			out = append(out, written{id, at})
		}
		if (i+n)/100 > i/100 {
			r.status("write "+site, "%d rows acknowledged", i+n)
		}
	}
	return out, nil
}

// findReached reads, from every surviving site, which of the lost site's
// acknowledged writes had reached it: the others are the RPO.
func (r *Report) findReached(ctx context.Context) error {
	for _, s := range r.topo.SiteNames() {
		if s == r.Site {
			continue
		}
		ids, err := r.runIDs(ctx, s, r.Site)
		if err != nil {
			return fmt.Errorf("read %s's rows at %s after the loss: %w", r.Site, s, err)
		}
		maps.Copy(r.reached, ids)
	}
	for _, w := range r.written[r.Site] {
		if r.reached[w.id] {
			continue
		}
		r.RPORows++
		if r.RPOWindow == nil {
			r.RPOWindow = &Window{From: w.at, To: w.at}
		}
		r.RPOWindow.To = w.at
	}
	return nil
}

// runIDs is the set of the run's row ids owned by owner held at site.
func (r *Report) runIDs(ctx context.Context, site, owner string) (map[uuid.UUID]bool, error) {
	pool, err := r.sess.Pool(ctx, site)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT id FROM public.sitectl_drill WHERE run = $1 AND site = $2`, r.Run, owner)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// rebuild plans and runs the lost site's rebuild.
func (r *Report) rebuild(ctx context.Context) error {
	rb, err := postgres.PlanRebuild(ctx, r.topo, r.sess, r.Site, postgres.RebuildOptions{Wait: r.opts.Wait, Progress: r.opts.Progress})
	if err != nil {
		return err
	}
	r.Rebuild = rb
	err = rb.Run(ctx, nil)
	r.Verified = rb.Verified
	r.rebuilt = err == nil
	return err
}

// check verifies every acknowledged write that should be everywhere is at every
// site: the survivors' writes, and the lost site's writes that had reached a peer.
func (r *Report) check(ctx context.Context) {
	deadline := time.Now().Add(r.opts.Wait)
	for {
		r.Missing = r.missing(ctx)
		if len(r.Missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(r.Missing) > 0 {
		r.Failed = append(r.Failed, fmt.Sprintf("%d acknowledged writes missing (first: %s)", len(r.Missing), r.Missing[0]))
	}
}

func (r *Report) missing(ctx context.Context) []string {
	var out []string
	for _, at := range r.topo.SiteNames() {
		for _, owner := range slices.Sorted(maps.Keys(r.written)) {
			ids, err := r.runIDs(ctx, at, owner)
			if err != nil {
				return []string{fmt.Sprintf("cannot read %s: %v", at, err)}
			}
			for _, w := range r.written[owner] {
				if owner == r.Site && !r.reached[w.id] {
					continue // the RPO: it never left the lost site
				}
				if !ids[w.id] {
					out = append(out, fmt.Sprintf("%s/%s at %s", owner, w.id, at))
				}
			}
		}
	}
	return out
}
