package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/sites"
)

// GenerationTable records, in every site's database, the generation of each site
// as that database knows it: a site's own row says which instance it is, the rows
// of the others what it has seen of them. It is not replicated: `site rebuild`
// writes it on every site.
const GenerationTable = "public.sitectl_generation"

// Generation states.
const (
	// GenRebuilding: a rebuild of this generation started and has not verified yet;
	// re-running `site rebuild` resumes it.
	GenRebuilding = "rebuilding"
	// GenActive: the generation is the site's current instance.
	GenActive = "active"
)

// Generation is one site's instance number as one database records it. A site
// never rebuilt has generation 0 (no row).
type Generation struct {
	Site       string    `json:"site"`
	Generation int64     `json:"generation"`
	State      string    `json:"state"`
	At         time.Time `json:"at"`
}

// ReadGenerations reads the generation table of one database (empty when it has none).
func ReadGenerations(ctx context.Context, q Querier) (map[string]Generation, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, GenerationTable).Scan(&exists); err != nil {
		return nil, err
	}
	out := map[string]Generation{}
	if !exists {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT site, generation, state, updated_at FROM `+GenerationTable)
	if err != nil {
		return nil, err
	}
	var g Generation
	_, err = pgx.ForEachRow(rows, []any{&g.Site, &g.Generation, &g.State, &g.At}, func() error { out[g.Site] = g; return nil })
	return out, err
}

// writeGeneration records site's generation in one database.
func writeGeneration(ctx context.Context, pool *pgxpool.Pool, g Generation) error {
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+GenerationTable+` (
			site text PRIMARY KEY, generation bigint NOT NULL, state text NOT NULL,
			updated_at timestamptz NOT NULL DEFAULT now());
		COMMENT ON TABLE `+GenerationTable+` IS 'sitectl: each site''s instance generation (fencing; not replicated)';
		-- Fencing is sitectl's: default privileges may have granted the application
		-- role access to every new table; no role but the owner keeps any here.
		DO $$ DECLARE r record; BEGIN
			FOR r IN SELECT DISTINCT grantee FROM information_schema.role_table_grants
				WHERE table_schema = 'public' AND table_name = 'sitectl_generation' AND grantee <> current_user LOOP
				IF r.grantee = 'PUBLIC' THEN
					REVOKE ALL ON public.sitectl_generation FROM PUBLIC;
				ELSE
					EXECUTE format('REVOKE ALL ON public.sitectl_generation FROM %I', r.grantee);
				END IF;
			END LOOP; END $$`,
		pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return err
	}
	_, err = pool.Exec(ctx, `INSERT INTO `+GenerationTable+` (site, generation, state) VALUES ($1, $2, $3)
		ON CONFLICT (site) DO UPDATE SET generation = excluded.generation, state = excluded.state, updated_at = now()`,
		g.Site, g.Generation, g.State)
	return err
}

// FencedError is an old instance of a site: its database holds a lower generation
// than its peers record for it (the site was rebuilt meanwhile).
type FencedError struct {
	Site string
	// Own is the generation the database records for itself; Recorded the highest
	// its peers record, and where.
	Own, Recorded int64
	RecordedAt    []string
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("%s: this database is generation %d of %s, but %s record generation %d: it is an old instance of %s, replaced by a rebuild, and is fenced (never reconnected as it is). Choose: copy the rows it holds that the rebuilt %s lacks with `sitectl site reconcile %s --from-old <its address>` and then retire it, or retire it as it is (stop it and delete its data); then point %s's postgres.host back at the rebuilt instance",
		e.Site, e.Own, e.Site, strings.Join(e.RecordedAt, " and "), e.Recorded, e.Site, e.Site, e.Site, e.Site)
}

// HalfRebuiltError is a site whose rebuild started and did not finish.
type HalfRebuiltError struct {
	Site       string
	Generation int64
}

func (e *HalfRebuiltError) Error() string {
	return fmt.Sprintf("%s: its rebuild to generation %d started and did not finish (recorded in %s): re-run `sitectl site rebuild %s`; it resumes and copies nothing twice", e.Site, e.Generation, GenerationTable, e.Site)
}

// checkFences reads every site's generation table and refuses a site whose own
// generation is behind what a peer records for it, or whose rebuild is unfinished.
func checkFences(ctx context.Context, sess *Session, names []string) map[string]error {
	gens := map[string]map[string]Generation{}
	errs := map[string]error{}
	for _, n := range names {
		pool, err := sess.Pool(ctx, n)
		if err != nil {
			errs[n] = err
			continue
		}
		g, err := ReadGenerations(ctx, pool)
		if err != nil {
			errs[n] = fmt.Errorf("%s: read %s: %w", n, GenerationTable, err)
			continue
		}
		gens[n] = g
	}
	for _, n := range slices.Sorted(maps.Keys(gens)) {
		if err := fenceOf(n, gens); err != nil {
			errs[n] = err
		}
	}
	return errs
}

// fenceOf judges one site from every database's generation table.
func fenceOf(site string, gens map[string]map[string]Generation) error {
	own := gens[site][site]
	if own.State == GenRebuilding {
		return &HalfRebuiltError{Site: site, Generation: own.Generation}
	}
	var e FencedError
	for _, peer := range slices.Sorted(maps.Keys(gens)) {
		if peer == site {
			continue
		}
		if g := gens[peer][site]; g.Generation > own.Generation {
			if g.Generation > e.Recorded {
				e.Recorded, e.RecordedAt = g.Generation, nil
			}
			if g.Generation == e.Recorded {
				e.RecordedAt = append(e.RecordedAt, peer)
			}
		}
	}
	if e.Recorded == 0 {
		return nil
	}
	e.Site, e.Own = site, own.Generation
	return &e
}

// IsFenced reports whether err is (or holds) a fenced old instance.
func IsFenced(err error) bool { return errors.As(err, new(*FencedError)) }

// LostError is a site whose database is new and empty while a peer still
// subscribes to it and holds rows it owns: the site was lost and replaced.
type LostError struct {
	Site string
	// Held is what a peer holds of the site's rows (peer → rows); Own what the
	// site's database holds of them.
	Held map[string]int64
	Own  int64
}

func (e *LostError) Error() string {
	var held []string
	for _, p := range slices.Sorted(maps.Keys(e.Held)) {
		held = append(held, fmt.Sprintf("%s holds %d", p, e.Held[p]))
	}
	what := "an empty one"
	if e.Own > 0 {
		what = fmt.Sprintf("one holding only %d of them (a stale copy)", e.Own)
	}
	return fmt.Sprintf("%s: its database holds no replication object and %d of the rows it publishes, but %s of them and still subscribes to it: %s was lost and its database replaced by %s. Rebuild it from its peers: `sitectl site rebuild %s` (with --force when it holds rows; a deploy would re-create the peers' subscriptions with a fresh copy of this database and drop the rows they hold of it)",
		e.Site, e.Own, strings.Join(held, ", "), e.Site, what, e.Site)
}

// checkLost finds sites lost and replaced by a database without replication
// objects that holds fewer of the rows it publishes than a peer subscribing to it
// (LostError): an empty one, or a stale volume put back. A site deployed for the
// first time has no peer subscribing to it yet.
func checkLost(ctx context.Context, sess *Session, d *Desired, lives map[string]*Live) map[string]error {
	errs := map[string]error{}
	for _, site := range slices.Sorted(maps.Keys(lives)) {
		l := lives[site]
		if len(l.Subscriptions) > 0 || len(l.Publications) > 0 {
			continue
		}
		e := &LostError{Site: site, Held: map[string]int64{}}
		for _, p := range d.Publications[site] {
			peer := lives[p.Flow.To]
			if peer == nil || peer.Subscriptions[p.SlotName()] == nil {
				continue
			}
			n, err := heldRows(ctx, sess, p.Flow.To, d.Tables, p.Flow.Filter)
			if err != nil || n == 0 {
				continue
			}
			if own, err := heldRows(ctx, sess, site, d.Tables, p.Flow.Filter); err == nil && own < n {
				e.Held[p.Flow.To] = n
				e.Own = own
			}
		}
		if len(e.Held) > 0 {
			errs[site] = e
		}
	}
	return errs
}

// heldRows counts the rows matching where over the tables the site has.
func heldRows(ctx context.Context, sess *Session, site string, tables []string, where string) (int64, error) {
	pool, err := sess.Pool(ctx, site)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range tables {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t).Scan(&exists); err != nil {
			return 0, err
		}
		if !exists {
			continue
		}
		var n int64
		if err := pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", quoteTable(t), where)).Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// siteGenerations is, per site, the highest generation any answering database
// records for it (sites never rebuilt are left out). A database that does not
// answer is skipped: the caller reports it.
func siteGenerations(ctx context.Context, sess *Session, names []string) map[string]int64 {
	return SiteGenerations(ctx, sess.Pool, names)
}

// SiteGenerations is siteGenerations for any way of opening a site's database
// (drill/pgdrill's observer names the flows with it and Flow.SlotName).
func SiteGenerations(ctx context.Context, open func(context.Context, string) (*pgxpool.Pool, error), names []string) map[string]int64 {
	out := map[string]int64{}
	for _, n := range names {
		pool, err := open(ctx, n)
		if err != nil {
			continue
		}
		gens, err := ReadGenerations(ctx, pool)
		if err != nil {
			continue
		}
		for s, g := range gens {
			if g.Generation > out[s] {
				out[s] = g.Generation
			}
		}
	}
	return out
}

// buildLive is Build at the generations the sites' databases record: after a
// rebuild, the flows of the rebuilt site have generation-named subscriptions and
// slots (Flow.SlotName).
func buildLive(ctx context.Context, topo *sites.Topology, sess *Session) (*Desired, error) {
	d, err := Build(topo)
	if err != nil || len(d.SiteNames()) == 0 {
		return d, err
	}
	gens := siteGenerations(ctx, sess, d.SiteNames())
	if len(gens) == 0 {
		return d, nil
	}
	return BuildAt(topo, gens)
}
