package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sum is the count and an order-independent checksum of a set of rows: the sum of
// each row's 64-bit hash (hash_record_extended: every column hashed by its type's
// hash function, as hash partitioning does, so independent of time zone and date
// style), so two sites holding the same rows in any physical order have the same
// Sum. A table with a column of a type that has no hash function (json, point)
// gets the sum of the first 60 bits of each row's md5 (its text form, printed in
// UTC) instead, its checksum prefixed "md5:".
type Sum struct {
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}

func (s Sum) String() string { return fmt.Sprintf("%d rows, checksum %s", s.Rows, s.Checksum) }

// The checksum expressions over a table aliased t (Sum).
const (
	sumHash = `coalesce(sum(hash_record_extended(t, 0)), 0)::text`
	sumText = `'md5:' || coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text`
)

// RowSum reads the Sum of the table's rows matching where (SQL; "true" for all).
func RowSum(ctx context.Context, pool *pgxpool.Pool, table, where string) (Sum, error) {
	sums, err := rowSums(ctx, pool, table, where, false)
	return sums[""], err
}

// sumSession sets what the md5 checksum's text forms depend on: UTC, ISO dates,
// full floats.
const sumSession = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3"

// rowSumsByOwner reads, in one scan of the table, the Sum of the rows matching
// where of each owning site (OwnerColumn); an owner without rows is absent.
func rowSumsByOwner(ctx context.Context, pool *pgxpool.Pool, table, where string) (map[string]Sum, error) {
	return rowSums(ctx, pool, table, where, true)
}

// rowSums reads the Sums of the table's rows matching where, by owner or (key "")
// of them all, with the hash checksum, or the md5 one where a column has no hash
// function (or the server no hash_record_extended, before PostgreSQL 14).
func rowSums(ctx context.Context, pool *pgxpool.Pool, table, where string, byOwner bool) (map[string]Sum, error) {
	out, err := rowSumsWith(ctx, pool, table, where, byOwner, sumHash)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42883" { // undefined_function
		out, err = rowSumsWith(ctx, pool, table, where, byOwner, sumText)
	}
	if err != nil {
		return nil, fmt.Errorf("checksum %s WHERE %s: %w", table, where, err)
	}
	return out, nil
}

func rowSumsWith(ctx context.Context, pool *pgxpool.Pool, table, where string, byOwner bool, sum string) (map[string]Sum, error) {
	out := map[string]Sum{}
	query := fmt.Sprintf(`SELECT '', count(*), %s FROM %s t WHERE %s`, sum, quoteTable(table), where)
	if byOwner {
		query = fmt.Sprintf(`SELECT %s, count(*), %s FROM %s t WHERE %s GROUP BY 1`, quoteIdent(OwnerColumn), sum, quoteTable(table), where)
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if sum == sumText {
			if _, err := tx.Exec(ctx, sumSession, pgx.QueryExecModeSimpleProtocol); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, query)
		if err != nil {
			return err
		}
		var owner string
		var s Sum
		_, err = pgx.ForEachRow(rows, []any{&owner, &s.Rows, &s.Checksum}, func() error { out[owner] = s; return nil })
		return err
	})
	return out, err
}

// Copied is what one copy moved.
type Copied struct {
	Table string        `json:"table"`
	Where string        `json:"where"`
	From  string        `json:"from"`
	To    string        `json:"to"`
	Rows  int64         `json:"rows"`
	Took  time.Duration `json:"took_ns"`
	// Merged: the target held some of the rows already; only those it lacked were
	// inserted (through a staging table).
	Merged bool `json:"merged,omitempty"`
}

// copyEnd is one side of a copy: a site's pool and its name.
type copyEnd struct {
	site string
	pool *pgxpool.Pool
}

// copyMissing brings to dst the rows of table matching where that src holds and dst
// lacks, and never deletes or changes a row at dst. Equal sums: nothing is copied.
// An empty target gets a straight COPY (src's COPY TO piped into dst's COPY FROM,
// what pg_dump | psql does); a target holding some of the rows gets them through a
// temporary staging table and INSERT ... ON CONFLICT DO NOTHING, so a re-run after
// an interruption copies nothing twice. progress is called with the rows streamed
// so far (about once a second) and may be nil.
func copyMissing(ctx context.Context, src, dst copyEnd, table, where string, progress func(rows int64)) (Copied, error) {
	c := Copied{Table: table, Where: where, From: src.site, To: dst.site}
	began := time.Now()
	// Both sums at once (an empty target takes everything: the source's is then
	// not waited for).
	wantc := make(chan error, 1)
	var want Sum
	sctx, cancelSum := context.WithCancel(ctx)
	defer cancelSum()
	go func() {
		var err error
		want, err = RowSum(sctx, src.pool, table, where)
		wantc <- err
	}()
	have, err := RowSum(ctx, dst.pool, table, where)
	if err != nil {
		return c, fmt.Errorf("%s: %w", dst.site, err)
	}
	if have.Rows > 0 {
		if err := <-wantc; err != nil {
			return c, fmt.Errorf("%s: %w", src.site, err)
		}
		if have == want {
			return c, nil
		}
	}
	cancelSum()
	cols, err := tableColumns(ctx, dst.pool, table)
	if err != nil {
		return c, fmt.Errorf("%s: %w", dst.site, err)
	}
	conn, err := dst.pool.Acquire(ctx)
	if err != nil {
		return c, err
	}
	defer conn.Release()
	target := quoteTable(table)
	c.Merged = have.Rows > 0
	tx, err := conn.Begin(ctx)
	if err != nil {
		return c, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if c.Merged {
		if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE sitectl_stage (LIKE %s) ON COMMIT DROP", target)); err != nil {
			return c, fmt.Errorf("%s: staging table for %s: %w", dst.site, table, err)
		}
		target = "sitectl_stage"
	}
	streamed, err := pipeCopy(ctx, src.pool, tx, fmt.Sprintf("COPY (SELECT %s FROM %s WHERE %s) TO STDOUT (FORMAT binary)", cols, quoteTable(table), where),
		fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", target, cols), progress)
	if err != nil {
		return c, fmt.Errorf("copy %s WHERE %s from %s to %s: %w", table, where, src.site, dst.site, err)
	}
	c.Rows = streamed
	if c.Merged {
		tag, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM sitectl_stage ON CONFLICT DO NOTHING", quoteTable(table), cols, cols))
		if err != nil {
			return c, fmt.Errorf("%s: merge %s: %w", dst.site, table, err)
		}
		c.Rows = tag.RowsAffected()
	}
	if err := tx.Commit(ctx); err != nil {
		return c, fmt.Errorf("%s: commit the copy of %s: %w", dst.site, table, err)
	}
	c.Took = time.Since(began)
	return c, nil
}

// tableColumns is the table's column list, quoted, in its attribute order.
func tableColumns(ctx context.Context, q Querier, table string) (string, error) {
	rows, err := q.Query(ctx, `SELECT quote_ident(attname) FROM pg_attribute
		WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	if err != nil {
		return "", err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	if len(cols) == 0 {
		return "", fmt.Errorf("table %s has no columns", table)
	}
	return strings.Join(cols, ", "), nil
}

// copyChunk is the size of the chunks a copy sends the target: one read of
// pgconn's CopyFrom (64 kB buffer) takes one chunk whole.
const copyChunk = 32 << 10

// pipeCopy streams the COPY of out (run on src) into in (run in tx), both in the
// same format (binary: no text to print and parse on either side), and returns the
// rows written. progress, when set, gets the rows the target has taken so far
// (pg_stat_progress_copy) about once a second.
func pipeCopy(ctx context.Context, src *pgxpool.Pool, tx pgx.Tx, out, in string, progress func(int64)) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := src.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	pr, pw := io.Pipe()
	outErr := make(chan error, 1)
	go func() {
		// The source sends one CopyData message per row, and pgconn's CopyFrom
		// sends each Read as a message of its own, unbuffered: without this buffer
		// every row crossed the pipe, and the network to the target, alone (a
		// packet per row, TCP_NODELAY). pg_dump | psql sends libpq's 8 kB buffers.
		bw := bufio.NewWriterSize(pw, copyChunk)
		_, err := conn.Conn().PgConn().CopyTo(ctx, bw, out)
		if err == nil {
			err = bw.Flush()
		}
		_ = pw.CloseWithError(err)
		outErr <- err
	}()
	stop := make(chan struct{})
	var seen atomic.Int64
	if progress != nil {
		pid := tx.Conn().PgConn().PID()
		cfg := tx.Conn().Config().Copy()
		go watchCopy(ctx, cfg, pid, stop, func(n int64) { seen.Store(n); progress(n) })
	}
	tag, inErr := tx.Conn().PgConn().CopyFrom(ctx, pr, in)
	close(stop)
	if inErr != nil {
		cancel()
		_ = pr.CloseWithError(inErr)
	}
	srcErr := <-outErr
	if srcErr != nil && !errors.Is(srcErr, io.ErrClosedPipe) {
		return 0, fmt.Errorf("read: %w", srcErr)
	}
	if inErr != nil {
		return 0, fmt.Errorf("write: %w", inErr)
	}
	n := tag.RowsAffected()
	if progress != nil && n != seen.Load() {
		progress(n)
	}
	return n, nil
}

// watchCopy reports, about once a second until stop, the rows the COPY FROM of
// backend pid has taken (pg_stat_progress_copy), read on a connection of its own.
func watchCopy(ctx context.Context, cfg *pgx.ConnConfig, pid uint32, stop <-chan struct{}, report func(int64)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if conn == nil {
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				continue
			}
			conn = c
		}
		var n int64
		if err := conn.QueryRow(ctx, `SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = $1`, int32(pid)).Scan(&n); err == nil {
			report(n)
		}
	}
}
