package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	FoundBefore int           `json:"found_before"`
	FoundAfter  int           `json:"found_after"`
	LiveBefore  int           `json:"live_before"`
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
	if err := live.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&rep.Point); err != nil {
		return rep, err
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
	restored, err := Restore(ctx, o.Runner, o.Target, RestoreOptions{Time: rep.Point, Dest: o.Dest, Progress: o.Progress})
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
	return verifyDrill(ctx, o, rep, live)
}

func verifyDrill(ctx context.Context, o DrillOptions, rep DrillReport, live *pgx.Conn) (DrillReport, error) {
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
