package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// replaceLoss is what a replace loses: per replicated table, the live site's own
// rows now, and those of them that neither the peer its rows come back from nor
// the restored copy holds.
type replaceLoss struct {
	Table string `json:"table"`
	Live  int    `json:"live_rows"`
	Lost  int    `json:"lost_rows"`
}

// replaceResult is what -o json prints for restore --replace.
type replaceResult struct {
	*rebuildResult
	Loss []replaceLoss `json:"lost"`
}

// errReplaceRefused: --replace without a confirmation (nothing changed).
var errReplaceRefused = errors.New("restore --replace: refusing to replace the live database without a confirmation; nothing was changed. See the plan and the rows lost with --dry-run, then re-run with --i-understand-data-loss (or on a terminal, type the site's name when asked)")

// runRestoreReplace replaces the site's live replicated rows with the restored
// copy's through the rebuild's steps (postgres.PlanRebuild with Force and the
// restored copy), after a confirmation.
func runRestoreReplace(ctx context.Context, g *globals, topo *sites.Topology, sc *scratchCopy, o restoreOptions) error {
	site := sc.target.Site
	live := topo.Site(site).Postgres
	pool, err := connectScratch(ctx, sc, live.User, live.Database)
	if err != nil {
		return err
	}
	defer pool.Close()
	sess := postgres.NewSession(topo)
	defer sess.Close()
	prog := g.progress()
	label := "restored copy as of " + sc.restored.Target.UTC().Format(time.RFC3339Nano)
	opts := postgres.RebuildOptions{Force: true, Wait: o.wait, Restored: &postgres.RestoredCopy{Label: label, Pool: pool}}
	if prog != nil {
		opts.Progress = prog.Status
	}
	r, err := postgres.PlanRebuild(ctx, topo, sess, site, opts)
	if err != nil {
		return fmt.Errorf("restore --replace: %w", err)
	}
	loss, err := lostRows(ctx, sess, site, r.OwnSource, postgres.QualifiedTables(live.Tables), pool)
	if err != nil {
		return fmt.Errorf("restore --replace %s: count the rows lost: %w", site, err)
	}
	res := &replaceResult{rebuildResult: &rebuildResult{Rebuild: r, Plan: r.Plan(topo.Env)}, Loss: loss}
	if !g.structured() {
		if err := res.Plan.Render(g.streams.Out); err != nil {
			return err
		}
		printLoss(g.streams.Out, site, r.OwnSource, label, loss)
	}
	if o.dryRun {
		_, _ = g.printStructured(res)
		return &ExitError{Code: 2, Silent: true}
	}
	if ok, err := confirmReplace(g.streams, site, o.understand); !ok {
		_, _ = g.printStructured(res)
		return &ExitError{Code: 1, Err: errors.Join(err, errReplaceRefused)}
	}
	began := time.Now()
	err = r.Run(ctx, func(st plan.Step) func(error) { return prog.Step("%s: %s", st.Site, st) })
	res.Applied, res.TookSec = err == nil, time.Since(began).Seconds()
	if err != nil {
		res.Error = err.Error()
		_, _ = g.printStructured(res)
		return &ExitError{Code: 1, Err: fmt.Errorf("restore --replace %s: %w (re-run the same command to resume)", site, err)}
	}
	if ok, err := g.printStructured(res); ok {
		return err
	}
	fmt.Fprintf(g.streams.Out, "%s replaced by its %s (generation %d) in %s: %d rows copied, %d (table, owner) pairs verified equal on every site; the scratch server is removed.\n",
		site, label, r.Generation, time.Since(began).Round(time.Second), r.Rows(), len(r.Verified))
	return nil
}

func connectScratch(ctx context.Context, sc *scratchCopy, user, database string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(sc.scratch.DSN(user, database))
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.Password = string(sc.password)
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("scratch server %s: %w", sc.scratch.DSN(user, database), err)
	}
	return pool, nil
}

// printLoss says what the replace keeps and loses, the lost rows counted.
func printLoss(w io.Writer, site, peer, label string, loss []replaceLoss) {
	var lost []string
	for _, l := range loss {
		if l.Lost > 0 {
			lost = append(lost, fmt.Sprintf("%s: %d of %d", l.Table, l.Lost, l.Live))
		}
	}
	if peer == "" {
		peer = "(no peer)"
	}
	fmt.Fprintf(w, `
What restore --replace does to %[1]s (the replicated tables only; other tables stay as they are):
  its replicated tables are emptied and filled again: the other sites' rows as their
  sites hold them now; its own rows as %[2]s holds them now (rows written after the
  restore time that replication carried there come back, in their newest version);
  then the rows of its %[3]s that are still missing (rows deleted since, also at the
  peers: they come back at every site). A row %[2]s holds keeps %[2]s's version.
Lost: the rows of %[1]s that only its live database holds (written after the
restore time and not at %[2]s): %[4]s.
Scale %[1]s's application down first: a row written there during the replace may be lost, or
reach a peer twice and stop its subscription (docs/site-rebuild.md, known limits).
`, site, peer, label, orNone(strings.Join(lost, ", ")))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// confirmReplace: --i-understand-data-loss, or on a terminal the site's name typed.
func confirmReplace(s Streams, site string, understand bool) (bool, error) {
	if understand {
		return true, nil
	}
	if !isTerminal(s.In) {
		return false, nil
	}
	fmt.Fprintf(s.Out, "Type %q to replace %s's live database: ", site, site)
	line, err := bufio.NewReader(s.In).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return false, fmt.Errorf("no answer: %w", err)
	}
	if got := strings.TrimSpace(line); got != site {
		return false, fmt.Errorf("typed %q, not %q", got, site)
	}
	return true, nil
}

// lostRows counts, per table, the site's own rows its live database holds now and
// those neither the peer (its rows come back from there) nor the restored copy
// holds, compared by key.
func lostRows(ctx context.Context, sess *postgres.Session, site, peer string, tables []string, restored *pgxpool.Pool) ([]replaceLoss, error) {
	livePool, err := sess.Pool(ctx, site)
	if err != nil {
		return nil, err
	}
	others := []*pgxpool.Pool{restored}
	if peer != "" {
		p, err := sess.Pool(ctx, peer)
		if err != nil {
			return nil, err
		}
		others = append(others, p)
	}
	out := make([]replaceLoss, 0, len(tables))
	for _, t := range tables {
		keys, err := ownKeys(ctx, livePool, t, site)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", site, err)
		}
		l := replaceLoss{Table: t, Live: len(keys)}
		for _, p := range others {
			held, err := ownKeys(ctx, p, t, site)
			if err != nil {
				return nil, err
			}
			for k := range held {
				delete(keys, k)
			}
		}
		l.Lost = len(keys)
		out = append(out, l)
	}
	return out, nil
}

// ownKeys is the set of keys of site's rows in table (none when the table is not there).
func ownKeys(ctx context.Context, pool *pgxpool.Pool, table, site string) (map[string]struct{}, error) {
	keys := map[string]struct{}{}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil || !exists {
		return keys, err
	}
	q := fmt.Sprintf("SELECT %s::text FROM %s WHERE %s = $1", pgx.Identifier{postgres.KeyColumn}.Sanitize(),
		pgx.Identifier(strings.Split(table, ".")).Sanitize(), pgx.Identifier{postgres.OwnerColumn}.Sanitize())
	rows, err := pool.Query(ctx, q, site)
	if err != nil {
		return nil, fmt.Errorf("keys of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys[k] = struct{}{}
	}
	return keys, rows.Err()
}
