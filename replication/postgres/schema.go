package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/sites"
)

// OwnerColumn is the column holding the site that owns (and alone writes) a row.
const OwnerColumn = "site"

// KeyColumn is the UUIDv7 key minted by the owning site.
const KeyColumn = "id"

// TableInfo is the shape of one replicated table, as far as replication cares.
type TableInfo struct {
	Name    string            `json:"table"`
	Columns map[string]string `json:"columns"` // name → type
	// Identity is how the replica identity is set: default (primary key), index,
	// full or nothing.
	Identity string `json:"replica_identity"`
	// IdentityColumns are the columns of the replica identity (all for full).
	IdentityColumns []string `json:"identity_columns"`
	IdentityIndex   string   `json:"identity_index,omitempty"`
}

// InspectTable reads a table's columns and replica identity; nil when it does not exist.
func InspectTable(ctx context.Context, q Querier, table string) (*TableInfo, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return nil, nil
	}
	info := &TableInfo{Name: table, Columns: map[string]string{}}
	rows, err := q.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped`, table)
	if err != nil {
		return nil, err
	}
	var col, typ string
	if _, err := pgx.ForEachRow(rows, []any{&col, &typ}, func() error { info.Columns[col] = typ; return nil }); err != nil {
		return nil, err
	}
	var ident string
	if err := q.QueryRow(ctx, `SELECT relreplident::text FROM pg_class WHERE oid = $1::text::regclass`, table).Scan(&ident); err != nil {
		return nil, err
	}
	var indexCond string
	switch ident {
	case "d":
		info.Identity, indexCond = "default", "i.indisprimary"
	case "i":
		info.Identity, indexCond = "index", "i.indisreplident"
	case "f":
		info.Identity = "full"
		for c := range info.Columns {
			info.IdentityColumns = append(info.IdentityColumns, c)
		}
	default:
		info.Identity = "nothing"
	}
	if indexCond != "" {
		rows, err := q.Query(ctx, `SELECT ic.relname, a.attname FROM pg_index i
			JOIN pg_class ic ON ic.oid = i.indexrelid
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indrelid = $1::text::regclass AND `+indexCond, table)
		if err != nil {
			return nil, err
		}
		var idx string
		if _, err := pgx.ForEachRow(rows, []any{&idx, &col}, func() error {
			info.IdentityIndex = idx
			info.IdentityColumns = append(info.IdentityColumns, col)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	sort.Strings(info.IdentityColumns)
	return info, nil
}

// Check says what makes the table unfit for owner-filtered replication, or nil: a
// UUID key column, the owner column, and a replica identity that covers the owner
// column (PostgreSQL refuses UPDATE and DELETE otherwise, because the publication's
// row filter reads it).
func (t *TableInfo) Check() error {
	var probs []string
	if typ, ok := t.Columns[KeyColumn]; !ok {
		probs = append(probs, fmt.Sprintf("has no %s column (the UUIDv7 key minted by the owning site)", KeyColumn))
	} else if typ != "uuid" {
		probs = append(probs, fmt.Sprintf("column %s is %s; it must be uuid (UUIDv7 keys)", KeyColumn, typ))
	}
	if _, ok := t.Columns[OwnerColumn]; !ok {
		probs = append(probs, fmt.Sprintf("has no %s column (the site that owns the row; publications filter on it)", OwnerColumn))
	}
	has := func(c string) bool {
		for _, x := range t.IdentityColumns {
			if x == c {
				return true
			}
		}
		return false
	}
	switch {
	case t.Identity == "nothing" || len(t.IdentityColumns) == 0:
		probs = append(probs, "has no replica identity (no primary key); make the primary key (site, id)")
	case !has(OwnerColumn):
		what := "primary key"
		if t.Identity == "index" {
			what = "replica identity index " + t.IdentityIndex
		}
		probs = append(probs, fmt.Sprintf("replica identity (%s: %s) does not include the owner column %s; make the primary key (site, id), or add a unique index on (id, site) and ALTER TABLE %s REPLICA IDENTITY USING INDEX it",
			what, strings.Join(t.IdentityColumns, ", "), OwnerColumn, t.Name))
	case t.Identity != "full" && !has(KeyColumn):
		probs = append(probs, fmt.Sprintf("replica identity (%s) does not include the key column %s", strings.Join(t.IdentityColumns, ", "), KeyColumn))
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("table %s cannot be replicated: %s", t.Name, strings.Join(probs, "; "))
}

// Schema is the SQL file that creates the replicated tables on every site.
type Schema struct {
	Path   string
	SQL    string
	SHA256 string
}

// LoadSchema reads the schema file named by the site's postgres.schema_file,
// relative to the config directory.
func LoadSchema(topo *sites.Topology, site *sites.Site) (*Schema, error) {
	if site.Postgres.SchemaFile == "" {
		return nil, nil
	}
	path := site.Postgres.SchemaFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(topo.Dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: postgres.schema_file: %w", site.Name, err)
	}
	sum := sha256.Sum256(b)
	return &Schema{Path: path, SQL: string(b), SHA256: hex.EncodeToString(sum[:])}, nil
}

// errRollback ends a dry run.
var errRollback = errors.New("dry run")

// DryRun applies the schema inside a transaction, checks every replicated table in
// it, and rolls back: a plan learns whether the schema works without changing
// anything.
func (s *Schema) DryRun(ctx context.Context, pool *pgxpool.Pool, tables []string) error {
	return s.run(ctx, pool, tables, false)
}

// Apply applies the schema, checks the tables and records the file's hash, in one
// transaction.
func (s *Schema) Apply(ctx context.Context, pool *pgxpool.Pool, tables []string) error {
	return s.run(ctx, pool, tables, true)
}

// SchemaLockWait bounds how long the schema file (also its dry run in `plan`) waits
// for a lock another session holds: a CREATE INDEX or ALTER TABLE in it waits for
// every open transaction that wrote the table, and one left idle in a transaction
// would otherwise hold plan and deploy for ever.
var SchemaLockWait = 30 * time.Second

// lockWaitError is a schema run that gave up waiting for a lock: not the file's
// fault.
type lockWaitError struct{ error }

func (s *Schema) run(ctx context.Context, pool *pgxpool.Pool, tables []string, commit bool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", SchemaLockWait.Milliseconds())); err != nil {
			return err
		}
		// One schema run at a time per database: sites deploy in parallel, and one
		// site's plan dry-runs every replicating site's schema while that site's own
		// deploy applies it. Two CREATE ... IF NOT EXISTS of one name in concurrent
		// transactions fail the second with a duplicate key in pg_type once the
		// first commits; after this lock the second sees the committed objects.
		// Bounded by lock_timeout above.
		_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('sitectl.schema'))`)
		if err == nil {
			// Simple protocol: the file may hold many statements.
			_, err = tx.Exec(ctx, s.SQL, pgx.QueryExecModeSimpleProtocol)
		}
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
				return lockWaitError{fmt.Errorf("schema %s: waited %s for a lock another session holds (%s); pg_stat_activity lists who (state 'idle in transaction' is the usual culprit): end it, or retry once it ended", filepath.Base(s.Path), SchemaLockWait, pgErr.Message)}
			}
			return fmt.Errorf("schema %s: %w", filepath.Base(s.Path), err)
		}
		if err := checkTables(ctx, tx, tables); err != nil {
			return err
		}
		if !commit {
			return errRollback
		}
		_, err = tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS public.sitectl_schema (
				id int PRIMARY KEY DEFAULT 1 CHECK (id = 1), file text NOT NULL, sha256 text NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now());
			COMMENT ON TABLE public.sitectl_schema IS 'sitectl: the replicated schema file last applied here (not replicated)'`,
			pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO public.sitectl_schema (id, file, sha256) VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET file = excluded.file, sha256 = excluded.sha256, applied_at = now()`,
			filepath.Base(s.Path), s.SHA256)
		return err
	})
	if errors.Is(err, errRollback) {
		return nil
	}
	return err
}

// checkTables checks every replicated table exists and is fit to replicate.
func checkTables(ctx context.Context, q Querier, tables []string) error {
	var errs []error
	for _, t := range tables {
		info, err := InspectTable(ctx, q, t)
		switch {
		case err != nil:
			return err
		case info == nil:
			errs = append(errs, fmt.Errorf("table %s is listed in postgres.tables but the schema file does not create it", t))
		default:
			if err := info.Check(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
