package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/internal/progress"
)

// DrillTable holds the restore drill's marked rows in the live database.
const DrillTable = "sitectl_backup_drill"

// DrillOptions say where the restore drill writes, restores and looks.
type DrillOptions struct {
	// Live reaches the site's live database (password set).
	Live *pgx.ConnConfig
	// Runner reaches the site's Barman server; Target is the site.
	Runner Runner
	Target Target
	// Scratch starts the restored copy; Dest is its data directory on the Barman host.
	Scratch Scratch
	Dest    string
	// Rows is how many marked rows are written before the point, and again after.
	Rows     int
	Progress *progress.Printer
}

// DrillReport is what the restore drill saw.
type DrillReport struct {
	Site    string    `json:"site"`
	DrillID string    `json:"drill_id"`
	Point   time.Time `json:"point"`
	// Written before and after the point; Deleted: the rows before the point
	// deleted "by mistake" in the live database after it.
	WrittenBefore int `json:"written_before"`
	WrittenAfter  int `json:"written_after"`
	Deleted       int `json:"deleted"`
	// Found in the restored copy, before and after the point; LiveBefore is what
	// the live database still holds of the deleted rows (0: it was not touched).
	FoundBefore int `json:"found_before"`
	FoundAfter  int `json:"found_after"`
	LiveBefore  int `json:"live_before"`
	// Counts are the rows per table and owning site (column site; "" for a table
	// without one) of the live database as of the point and of the restored copy.
	Counts      []TableCount  `json:"counts"`
	BackupID    string        `json:"backup_id"`
	RecoverTook time.Duration `json:"recover_ns"`
	StartTook   time.Duration `json:"start_ns"`
	Pass        bool          `json:"pass"`
	Problems    []string      `json:"problems"`
}

// DrillRestore proves a point-in-time restore of one site: it writes marked rows,
// notes the time, writes more and deletes the first ones "by mistake", restores the
// database as of the noted time into scratch and checks every row before the point
// is there and none after. The scratch server is removed at the end, also on
// failure or when ctx is cancelled. An error is a drill that could not run; a
// drill that ran and found a difference is a report with Pass false.
func DrillRestore(ctx context.Context, o DrillOptions) (rep DrillReport, err error) {
	rep = DrillReport{Site: o.Target.Site, DrillID: uuid.NewString(), Problems: []string{}}
	live, err := pgx.ConnectConfig(ctx, o.Live)
	if err != nil {
		return rep, fmt.Errorf("drill restore %s: live database: %w", o.Target.Site, err)
	}
	defer func() { _ = live.Close(context.WithoutCancel(ctx)) }()
	if _, err := live.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+DrillTable+` (id uuid PRIMARY KEY, drill uuid NOT NULL, site text NOT NULL, phase text NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
		return rep, fmt.Errorf("drill restore %s: create %s: %w", o.Target.Site, DrillTable, err)
	}
	if backups, err := ListBackups(ctx, o.Runner, o.Target.Site); err != nil {
		return rep, err
	} else if len(backups) == 0 {
		if _, err := RunBackup(ctx, o.Runner, o.Target, o.Progress); err != nil {
			return rep, err
		}
	}
	if rep.WrittenBefore, err = writeMarked(ctx, live, rep.DrillID, o.Target.Site, "before", o.Rows); err != nil {
		return rep, err
	}
	// The point is read after the commit: every row before it committed earlier.
	// The live counts are read in the snapshot the point is taken in: with no other
	// writer committing in between, they are the database as of the point.
	var liveCounts map[countKey]int64
	err = pgx.BeginTxFunc(ctx, live, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&rep.Point); err != nil {
			return err
		}
		liveCounts, err = countRows(ctx, tx)
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("drill restore %s: the point and the live counts: %w", o.Target.Site, err)
	}
	time.Sleep(50 * time.Millisecond)
	if rep.WrittenAfter, err = writeMarked(ctx, live, rep.DrillID, o.Target.Site, "after", o.Rows); err != nil {
		return rep, err
	}
	tag, err := live.Exec(ctx, "DELETE FROM "+DrillTable+" WHERE drill = $1 AND phase = 'before'", rep.DrillID)
	if err != nil {
		return rep, fmt.Errorf("drill restore %s: the mistaken delete: %w", o.Target.Site, err)
	}
	rep.Deleted = int(tag.RowsAffected())
	o.Progress.Infof("%s: %d rows written before %s, %d after, the first %d deleted", o.Target.Site, rep.WrittenBefore, rep.Point.UTC().Format(time.RFC3339Nano), rep.WrittenAfter, rep.Deleted)

	defer func() {
		if rerr := o.Scratch.Remove(context.WithoutCancel(ctx)); rerr != nil {
			err = errors.Join(err, fmt.Errorf("drill restore %s: remove scratch: %w", o.Target.Site, rerr))
		}
		// A recover that failed or was interrupted leaves a partial copy of the
		// database that the scratch server never owned.
		if rerr := os.RemoveAll(o.Dest); rerr != nil {
			err = errors.Join(err, fmt.Errorf("drill restore %s: remove %s: %w", o.Target.Site, o.Dest, rerr))
		}
	}()
	restored, err := Restore(ctx, o.Runner, o.Target, RestoreOptions{Time: rep.Point, Dest: o.Dest, Live: o.Live, Progress: o.Progress})
	if err != nil {
		return rep, err
	}
	rep.BackupID, rep.RecoverTook = restored.BackupID, restored.Took
	start := time.Now()
	done := o.Progress.Step("start scratch PostgreSQL on the restored copy")
	err = o.Scratch.Start(ctx, o.Dest)
	if err == nil {
		err = o.Scratch.Wait(ctx, o.Scratch.DSN(o.Live.User, o.Live.Database), o.Live.Password)
	}
	done(err)
	if err != nil {
		return rep, err
	}
	rep.StartTook = time.Since(start)
	return verifyDrill(ctx, o, rep, live, liveCounts)
}

func verifyDrill(ctx context.Context, o DrillOptions, rep DrillReport, live *pgx.Conn, liveCounts map[countKey]int64) (DrillReport, error) {
	cfg, err := pgx.ParseConfig(o.Scratch.DSN(o.Live.User, o.Live.Database))
	if err != nil {
		return rep, err
	}
	cfg.Password = o.Live.Password
	scratch, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return rep, fmt.Errorf("drill restore %s: scratch: %w", o.Target.Site, err)
	}
	defer func() { _ = scratch.Close(context.WithoutCancel(ctx)) }()
	count := func(c *pgx.Conn, phase string) (n int, err error) {
		err = c.QueryRow(ctx, "SELECT count(*) FROM "+DrillTable+" WHERE drill = $1 AND phase = $2", rep.DrillID, phase).Scan(&n)
		return n, err
	}
	if rep.FoundBefore, err = count(scratch, "before"); err != nil {
		return rep, err
	}
	if rep.FoundAfter, err = count(scratch, "after"); err != nil {
		return rep, err
	}
	if rep.LiveBefore, err = count(live, "before"); err != nil {
		return rep, err
	}
	if rep.FoundBefore != rep.WrittenBefore {
		rep.Problems = append(rep.Problems, fmt.Sprintf("restored copy holds %d of the %d rows written before the point", rep.FoundBefore, rep.WrittenBefore))
	}
	if rep.FoundAfter != 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("restored copy holds %d rows written after the point (want none)", rep.FoundAfter))
	}
	if rep.LiveBefore != 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the live database holds %d of the deleted rows: the restore touched it", rep.LiveBefore))
	}
	restoredCounts, err := countRows(ctx, scratch)
	if err != nil {
		return rep, fmt.Errorf("drill restore %s: count the restored rows: %w", o.Target.Site, err)
	}
	rep.Counts = compareCounts(liveCounts, restoredCounts)
	for _, c := range rep.Counts {
		if c.Live != c.Restored {
			rep.Problems = append(rep.Problems, fmt.Sprintf("table %s, site %q: %d rows live as of the point, %d restored", c.Table, c.Site, c.Live, c.Restored))
		}
	}
	rep.Pass = len(rep.Problems) == 0
	return rep, nil
}

// writeMarked writes n rows of the drill in one transaction.
func writeMarked(ctx context.Context, c *pgx.Conn, drill, site, phase string, n int) (int, error) {
	rows := make([][]any, n)
	for i := range rows {
		id, err := uuid.NewV7()
		if err != nil {
			return 0, err
		}
		rows[i] = []any{id, drill, site, phase}
	}
	got, err := c.CopyFrom(ctx, pgx.Identifier{DrillTable}, []string{"id", "drill", "site", "phase"}, pgx.CopyFromRows(rows))
	if err != nil {
		return 0, fmt.Errorf("drill restore %s: write %s rows: %w", site, phase, err)
	}
	return int(got), nil
}

// TableCount is one table's rows owned by one site, live as of the point and in the
// restored copy.
type TableCount struct {
	Table    string `json:"table"`
	Site     string `json:"site"`
	Live     int64  `json:"live"`
	Restored int64  `json:"restored"`
}

type countKey struct{ table, site string }

// countRows counts the rows of every table of schema public per owning site
// (column site; one count with site "" for a table without one).
func countRows(ctx context.Context, q Querier) (map[countKey]int64, error) {
	rows, err := q.Query(ctx, `SELECT c.relname, EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'site' AND NOT a.attisdropped)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	type table struct {
		name    string
		hasSite bool
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (table, error) {
		var t table
		return t, r.Scan(&t.name, &t.hasSite)
	})
	if err != nil {
		return nil, err
	}
	out := map[countKey]int64{}
	for _, t := range tables {
		id := pgx.Identifier{"public", t.name}.Sanitize()
		query := "SELECT '', count(*) FROM " + id
		if t.hasSite {
			query = "SELECT coalesce(site::text, ''), count(*) FROM " + id + " GROUP BY 1"
		}
		rows, err := q.Query(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", t.name, err)
		}
		var site string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&site, &n}, func() error {
			out[countKey{t.name, site}] = n
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", t.name, err)
		}
	}
	return out, nil
}

// compareCounts lists every (table, site) of either side, sorted.
func compareCounts(live, restored map[countKey]int64) []TableCount {
	keys := map[countKey]bool{}
	for k := range live {
		keys[k] = true
	}
	for k := range restored {
		keys[k] = true
	}
	out := make([]TableCount, 0, len(keys))
	for k := range keys {
		out = append(out, TableCount{Table: k.table, Site: k.site, Live: live[k], Restored: restored[k]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Table != out[j].Table {
			return out[i].Table < out[j].Table
		}
		return out[i].Site < out[j].Site
	})
	return out
}
