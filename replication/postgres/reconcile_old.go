package postgres

import (
	"context"
	"fmt"
	"strings"
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
	OldGeneration int64             `json:"old_generation"`
	Generation    int64             `json:"generation"`
	Tables        []ReconciledTable `json:"tables"`
	Verified      []Verified        `json:"verified,omitempty"`
}

// ReconciledTable is one table's reconcile: the site's rows the old instance holds,
// sorted into what was copied and what was left alone, and why.
type ReconciledTable struct {
	Table string `json:"table"`
	// Mark is the highest key of the site's rows its peers held when it was rebuilt
	// (copied back then); empty when the rebuild recorded none.
	Mark string `json:"mark,omitempty"`
	// Copied: rows the rebuilt site lacks, minted after Mark: no peer ever had them.
	Copied int64 `json:"copied"`
	// Deleted: rows the rebuilt site lacks, minted at or before Mark: a peer held
	// them, the rebuild copied them back, and they were deleted since. Not copied.
	Deleted int64 `json:"deleted_since_rebuild"`
	// Changed: rows both hold, that differ. The rebuilt site's stays; not copied.
	Changed int64 `json:"changed"`
	// ChangedKeys are up to ten keys of Changed rows, to look at by hand.
	ChangedKeys []string `json:"changed_keys,omitempty"`
}

// Rows is the number of rows copied from the old instance.
func (r *Reconciled) Rows() int64 {
	var n int64
	for _, c := range r.Tables {
		n += c.Copied
	}
	return n
}

// Skipped is the number of the old instance's rows not copied: deleted since the
// rebuild, or changed.
func (r *Reconciled) Skipped() (deleted, changed int64) {
	for _, c := range r.Tables {
		deleted += c.Deleted
		changed += c.Changed
	}
	return deleted, changed
}

// ReconcileOld copies into the rebuilt site the rows it owns that its old instance
// (old, reached by the caller) acknowledged and that never reached a peer: those
// the rebuilt site lacks whose UUIDv7 key is above the mark the rebuild recorded
// (the highest key of the site's rows its peers held then, MarkTable). A row the
// rebuilt site lacks at or below the mark was copied back by the rebuild and
// deleted since: it is not brought back. A row both hold that differs is left as
// the rebuilt site has it, and reported with its key. Nothing at the rebuilt site
// is changed or deleted; the rows copied replicate from there to every site. Then
// it retires the old instance (its subscriptions disabled, its own generation row
// marked retired) and verifies every site. The old instance must be of a lower
// generation than the rebuilt site.
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
	marks, err := readMarks(ctx, pool, site, r.Generation)
	if err != nil {
		return r, fmt.Errorf("site reconcile %s: read %s: %w", site, MarkTable, err)
	}
	for _, t := range d.Tables {
		c, err := reconcileTable(ctx, old, pool, t, site, marks[t])
		if err != nil {
			return r, fmt.Errorf("site reconcile %s: %s: %w", site, t, err)
		}
		r.Tables = append(r.Tables, c)
	}
	if err := retire(ctx, old, site, r.OldGeneration); err != nil {
		return r, fmt.Errorf("site reconcile %s: retire the old instance: %w", site, err)
	}
	r.Verified, err = Verify(ctx, topo, sess, wait)
	return r, err
}

// reconcileTable stages the old instance's rows of the site in a temporary table
// at the rebuilt site, inserts those above the mark it lacks, and counts the rest.
func reconcileTable(ctx context.Context, old, pool *pgxpool.Pool, table, site string, mark *string) (ReconciledTable, error) {
	c := ReconciledTable{Table: table}
	cols, err := tableColumns(ctx, pool, table)
	if err != nil {
		return c, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return c, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE sitectl_stage (LIKE %s) ON COMMIT DROP", quoteTable(table))); err != nil {
		return c, err
	}
	if _, err := pipeCopy(ctx, old, tx, fmt.Sprintf("COPY (SELECT %s FROM %s WHERE %s) TO STDOUT (FORMAT binary)", cols, quoteTable(table), ownerFilter(site)),
		fmt.Sprintf("COPY sitectl_stage (%s) FROM STDIN (FORMAT binary)", cols), nil); err != nil {
		return c, fmt.Errorf("copy from the old instance: %w", err)
	}
	key := quoteIdent(KeyColumn)
	above := "true"
	if mark != nil {
		c.Mark = *mark
		above = fmt.Sprintf("s.%s > %s", key, quoteLiteral(*mark))
	}
	lacks := fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s t WHERE t.%s = s.%s)", quoteTable(table), key, key)
	tag, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM sitectl_stage s WHERE %s AND %s ON CONFLICT DO NOTHING", quoteTable(table), cols, prefixCols("s.", cols), above, lacks))
	if err != nil {
		return c, fmt.Errorf("insert: %w", err)
	}
	c.Copied = tag.RowsAffected()
	if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM sitectl_stage s WHERE %s", lacks)).Scan(&c.Deleted); err != nil {
		return c, err
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT s.%s::text FROM sitectl_stage s JOIN %s t ON t.%s = s.%s
		WHERE row(%s) IS DISTINCT FROM row(%s) ORDER BY 1`, key, quoteTable(table), key, key, prefixCols("s.", cols), prefixCols("t.", cols)))
	if err != nil {
		return c, err
	}
	changed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return c, err
	}
	c.Changed = int64(len(changed))
	c.ChangedKeys = changed[:min(len(changed), 10)]
	return c, tx.Commit(ctx)
}

// prefixCols qualifies each column of a comma-separated list with prefix.
func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

// MarkTable records, at a rebuilt site (not replicated), per generation and table,
// the highest key of the site's own rows its peers held when it was rebuilt: a
// returning old instance's rows above it never reached a peer (site reconcile).
const MarkTable = "public.sitectl_rebuild_mark"

// recordMarks records the marks of the site's generation, once: a resumed rebuild
// keeps the first.
func recordMarks(ctx context.Context, pool *pgxpool.Pool, site string, gen int64, tables []string) error {
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+MarkTable+` (
			site text NOT NULL, generation bigint NOT NULL, table_name text NOT NULL, max_key uuid,
			PRIMARY KEY (site, generation, table_name));
		COMMENT ON TABLE `+MarkTable+` IS 'sitectl: the highest key of the site''s own rows copied back by its rebuild (site reconcile; not replicated)';
		REVOKE ALL ON `+MarkTable+` FROM PUBLIC`, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return err
	}
	for _, t := range tables {
		_, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (site, generation, table_name, max_key)
			VALUES ($1, $2, $3, (SELECT %s FROM %s WHERE %s ORDER BY 1 DESC LIMIT 1)) ON CONFLICT DO NOTHING`, MarkTable, quoteIdent(KeyColumn), quoteTable(t), ownerFilter(site)), site, gen, t)
		if err != nil {
			return fmt.Errorf("record the mark of %s: %w", t, err)
		}
	}
	return nil
}

// readMarks reads the marks of the site's generation (table → key; a table with a
// row but no key held no row of the site: every row of the old instance is above).
func readMarks(ctx context.Context, pool *pgxpool.Pool, site string, gen int64) (map[string]*string, error) {
	out := map[string]*string{}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, MarkTable).Scan(&exists); err != nil || !exists {
		return out, err
	}
	rows, err := pool.Query(ctx, `SELECT table_name, coalesce(max_key::text, '00000000-0000-0000-0000-000000000000') FROM `+MarkTable+` WHERE site = $1 AND generation = $2`, site, gen)
	if err != nil {
		return nil, err
	}
	var t, k string
	_, err = pgx.ForEachRow(rows, []any{&t, &k}, func() error { v := k; out[t] = &v; return nil })
	return out, err
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
