package postgres

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier is the part of a pool (or connection, or transaction) the readers use.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Live is what one site's database holds now: its sitectl-owned publications,
// subscriptions and slots, the replicated tables and the server settings.
type Live struct {
	Site          string                       `json:"site"`
	Version       int                          `json:"server_version_num"`
	Settings      map[string]string            `json:"settings"`
	Publications  map[string]*LivePublication  `json:"publications"`
	Subscriptions map[string]*LiveSubscription `json:"subscriptions"`
	Slots         map[string]*LiveSlot         `json:"slots"`
	// Tables maps each replicated table to its checked shape; absent when missing.
	Tables map[string]*TableInfo `json:"tables"`
	// SchemaSHA is the sha256 of the schema file last applied by sitectl ("" if none).
	SchemaSHA string `json:"schema_sha256,omitempty"`
}

// LivePublication is one row of pg_publication with its tables and row filters.
type LivePublication struct {
	Name      string            `json:"name"`
	AllTables bool              `json:"all_tables"`
	Publish   string            `json:"publish"`
	Tables    map[string]string `json:"tables"` // table → row filter as the server prints it
}

// LiveSubscription is one row of pg_subscription with its tables' sync states.
type LiveSubscription struct {
	OID            uint32            `json:"oid"`
	Name           string            `json:"name"`
	Enabled        bool              `json:"enabled"`
	ConnInfo       string            `json:"-"` // holds the password: never printed
	Slot           string            `json:"slot"`
	Publications   []string          `json:"publications"`
	DisableOnError bool              `json:"disable_on_error"`
	SkipLSN        string            `json:"skip_lsn"`
	Tables         map[string]string `json:"tables"` // table → srsubstate (i, d, f, s, r)
}

// LiveSlot is one sitectl-owned logical slot of pg_replication_slots.
type LiveSlot struct {
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	ActivePID int32  `json:"active_pid,omitempty"`
	// WALStatus is reserved, extended, unreserved or lost (past max_slot_wal_keep_size).
	WALStatus string `json:"wal_status"`
}

// ReadLive reads the site's catalogs. tables are the replicated tables to check.
func ReadLive(ctx context.Context, q Querier, site string, tables []string) (*Live, error) {
	l := &Live{Site: site, Settings: map[string]string{}, Publications: map[string]*LivePublication{},
		Subscriptions: map[string]*LiveSubscription{}, Slots: map[string]*LiveSlot{}, Tables: map[string]*TableInfo{}}
	for _, read := range []func(context.Context, Querier) (string, error){
		l.readSettings, l.readPublications, l.readSubscriptions, l.readSlots,
	} {
		if what, err := read(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", site, what, err)
		}
	}
	if what, err := l.readTables(ctx, q, tables); err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", site, what, err)
	}
	return l, nil
}

// readSettings reads the server version and the settings replication needs; on
// failure it returns what it was reading.
func (l *Live) readSettings(ctx context.Context, q Querier) (string, error) {
	if err := q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&l.Version); err != nil {
		return "server version", err
	}
	rows, err := q.Query(ctx, `SELECT name, setting || coalesce(unit, '') FROM pg_settings
		WHERE name IN ('wal_level', 'max_slot_wal_keep_size', 'max_replication_slots', 'max_wal_senders',
		               'max_logical_replication_workers', 'max_worker_processes')`)
	if err != nil {
		return "settings", err
	}
	var name, val string
	if _, err := pgx.ForEachRow(rows, []any{&name, &val}, func() error { l.Settings[name] = val; return nil }); err != nil {
		return "settings", err
	}
	return "", nil
}

// readPublications reads sitectl's publications and their tables.
func (l *Live) readPublications(ctx context.Context, q Querier) (string, error) {
	rows, err := q.Query(ctx, `SELECT pubname, puballtables, concat_ws(', ',
			CASE WHEN pubinsert THEN 'insert' END, CASE WHEN pubupdate THEN 'update' END,
			CASE WHEN pubdelete THEN 'delete' END, CASE WHEN pubtruncate THEN 'truncate' END)
		FROM pg_publication WHERE pubname LIKE 'sitectl\_%'`)
	if err != nil {
		return "pg_publication", err
	}
	var name, val string
	var all bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &all, &val}, func() error {
		l.Publications[name] = &LivePublication{Name: name, AllTables: all, Publish: val, Tables: map[string]string{}}
		return nil
	}); err != nil {
		return "pg_publication", err
	}
	rows, err = q.Query(ctx, `SELECT p.pubname, n.nspname || '.' || c.relname, coalesce(pg_get_expr(r.prqual, r.prrelid), '')
		FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
		JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE p.pubname LIKE 'sitectl\_%'`)
	if err != nil {
		return "pg_publication_rel", err
	}
	var table, filter string
	if _, err := pgx.ForEachRow(rows, []any{&name, &table, &filter}, func() error {
		if p := l.Publications[name]; p != nil {
			p.Tables[table] = filter
		}
		return nil
	}); err != nil {
		return "pg_publication_rel", err
	}
	return "", nil
}

// readSubscriptions reads sitectl's subscriptions in this database and their
// tables' sync states.
func (l *Live) readSubscriptions(ctx context.Context, q Querier) (string, error) {
	rows, err := q.Query(ctx, `SELECT s.oid, s.subname, s.subenabled, s.subconninfo, coalesce(s.subslotname, ''),
			s.subpublications, s.subdisableonerr, s.subskiplsn::text
		FROM pg_subscription s
		WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND s.subname LIKE 'sitectl\_%'`)
	if err != nil {
		return "pg_subscription (sitectl's role must be a superuser on PostgreSQL 15)", err
	}
	for rows.Next() {
		s := &LiveSubscription{Tables: map[string]string{}}
		if err := rows.Scan(&s.OID, &s.Name, &s.Enabled, &s.ConnInfo, &s.Slot, &s.Publications, &s.DisableOnError, &s.SkipLSN); err != nil {
			rows.Close()
			return "pg_subscription", err
		}
		sort.Strings(s.Publications)
		l.Subscriptions[s.Name] = s
	}
	if err := rows.Err(); err != nil {
		return "pg_subscription", err
	}
	rows, err = q.Query(ctx, `SELECT s.subname, n.nspname || '.' || c.relname, r.srsubstate::text
		FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
		JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE s.subname LIKE 'sitectl\_%'`)
	if err != nil {
		return "pg_subscription_rel", err
	}
	var name, table, val string
	if _, err := pgx.ForEachRow(rows, []any{&name, &table, &val}, func() error {
		if s := l.Subscriptions[name]; s != nil {
			s.Tables[table] = val
		}
		return nil
	}); err != nil {
		return "pg_subscription_rel", err
	}
	return "", nil
}

// readSlots reads sitectl's logical slots of this database.
func (l *Live) readSlots(ctx context.Context, q Querier) (string, error) {
	rows, err := q.Query(ctx, `SELECT slot_name, active, coalesce(active_pid, 0), coalesce(wal_status, '') FROM pg_replication_slots
		WHERE slot_type = 'logical' AND database = current_database() AND slot_name LIKE 'sitectl\_%'`)
	if err != nil {
		return "pg_replication_slots", err
	}
	var name, val string
	var active bool
	var pid int32
	if _, err := pgx.ForEachRow(rows, []any{&name, &active, &pid, &val}, func() error {
		l.Slots[name] = &LiveSlot{Name: name, Active: active, ActivePID: pid, WALStatus: val}
		return nil
	}); err != nil {
		return "pg_replication_slots", err
	}
	return "", nil
}

// readTables inspects the replicated tables and reads the schema's checksum.
func (l *Live) readTables(ctx context.Context, q Querier, tables []string) (string, error) {
	for _, t := range tables {
		info, err := InspectTable(ctx, q, t)
		if err != nil {
			return "table " + t, err
		}
		if info != nil {
			l.Tables[t] = info
		}
	}
	var hasMeta bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('public.sitectl_schema') IS NOT NULL`).Scan(&hasMeta); err != nil {
		return "sitectl_schema", err
	}
	if hasMeta {
		if err := q.QueryRow(ctx, `SELECT coalesce(max(sha256), '') FROM public.sitectl_schema`).Scan(&l.SchemaSHA); err != nil {
			return "sitectl_schema", err
		}
	}
	return "", nil
}

// readAll reads every replicating site's live state at once; a site that cannot be
// reached or read has its error in errs instead.
func readAll(ctx context.Context, sess *Session, d *Desired) (map[string]*Live, map[string]error) {
	type result struct {
		site string
		live *Live
		err  error
	}
	names := d.SiteNames()
	ch := make(chan result, len(names))
	for _, n := range names {
		go func(n string) {
			pool, err := sess.Pool(ctx, n)
			if err != nil {
				ch <- result{site: n, err: err}
				return
			}
			live, err := ReadLive(ctx, pool, n, d.Tables)
			ch <- result{site: n, live: live, err: err}
		}(n)
	}
	lives, errs := map[string]*Live{}, map[string]error{}
	for range names {
		r := <-ch
		if r.err != nil {
			errs[r.site] = r.err
		} else {
			lives[r.site] = r.live
		}
	}
	return lives, errs
}

// normFilter makes a row filter comparable whether written by hand ("site =
// 'douala'") or printed by the server ("(site = 'douala'::text)").
func normFilter(f string) string {
	f = strings.ReplaceAll(f, "::text", "")
	f = strings.Join(strings.Fields(f), " ")
	for strings.HasPrefix(f, "(") && strings.HasSuffix(f, ")") && balanced(f[1:len(f)-1]) {
		f = strings.TrimSpace(f[1 : len(f)-1])
	}
	return f
}

func balanced(s string) bool {
	depth := 0
	for _, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

var _ Querier = (*pgxpool.Pool)(nil)
