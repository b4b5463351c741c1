package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sum is the count and an order-independent checksum of a set of rows: the sum of
// the first 60 bits of each row's md5 (its text form, printed in UTC), so two sites
// holding the same rows in any physical order have the same Sum.
type Sum struct {
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}

func (s Sum) String() string { return fmt.Sprintf("%d rows, checksum %s", s.Rows, s.Checksum) }

// RowSum reads the Sum of the table's rows matching where (SQL; "true" for all).
// Dates are printed in UTC and ISO in its transaction, so servers in different time
// zones agree.
func RowSum(ctx context.Context, pool *pgxpool.Pool, table, where string) (Sum, error) {
	var s Sum
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3", pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
		return tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text
			FROM %s t WHERE %s`, quoteTable(table), where)).Scan(&s.Rows, &s.Checksum)
	})
	if err != nil {
		return Sum{}, fmt.Errorf("checksum %s WHERE %s: %w", table, where, err)
	}
	return s, nil
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
	have, err := RowSum(ctx, dst.pool, table, where)
	if err != nil {
		return c, fmt.Errorf("%s: %w", dst.site, err)
	}
	// An empty target takes everything: no need to read the source's checksum.
	if have.Rows > 0 {
		want, err := RowSum(ctx, src.pool, table, where)
		if err != nil {
			return c, fmt.Errorf("%s: %w", src.site, err)
		}
		if have == want {
			return c, nil
		}
	}
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
	streamed, err := pipeCopy(ctx, src.pool, tx, fmt.Sprintf("COPY (SELECT %s FROM %s WHERE %s) TO STDOUT", cols, quoteTable(table), where),
		fmt.Sprintf("COPY %s (%s) FROM STDIN", target, cols), progress)
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

// pipeCopy streams the text COPY of out (run on src) into in (run in tx) and returns
// the rows streamed: one line of COPY's text format is one row.
func pipeCopy(ctx context.Context, src *pgxpool.Pool, tx pgx.Tx, out, in string, progress func(int64)) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := src.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	pr, pw := io.Pipe()
	cw := &lineCounter{w: pw}
	outErr := make(chan error, 1)
	go func() {
		_, err := conn.Conn().PgConn().CopyTo(ctx, cw, out)
		_ = pw.CloseWithError(err)
		outErr <- err
	}()
	stop := make(chan struct{})
	if progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					progress(cw.lines.Load())
				}
			}
		}()
	}
	_, inErr := tx.Conn().PgConn().CopyFrom(ctx, pr, in)
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
	n := cw.lines.Load()
	if progress != nil {
		progress(n)
	}
	return n, nil
}

// lineCounter counts the lines written through it.
type lineCounter struct {
	w     io.Writer
	lines atomic.Int64
}

func (l *lineCounter) Write(p []byte) (int, error) {
	l.lines.Add(int64(bytes.Count(p, []byte{'\n'})))
	return l.w.Write(p)
}
