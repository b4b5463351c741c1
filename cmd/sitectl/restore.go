package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/sites"
)

type restoreOptions struct {
	site, at, dir string
	port          int
	// replace: --replace (restorereplace.go); understand: --i-understand-data-loss.
	replace, understand, dryRun bool
	wait                        time.Duration
}

// parseRestoreTime reads --time: RFC 3339, or "YYYY-MM-DD HH:MM:SS" in local time.
func parseRestoreTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, time.DateTime} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--time %q: give a time as 2026-12-07T10:15:00Z (RFC 3339) or \"2026-12-07 11:15:00\" (local time)", s)
}

func newRestoreCommand(g *globals) *cobra.Command {
	var o restoreOptions
	var bf barmanFlags
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a site's database as of a time into a scratch PostgreSQL (the live one untouched unless --replace)",
		Long: `barman recover copies the newest base backup that ended before --time and the WAL up to
--time into a new data directory under --dir on the backup server, and a scratch
PostgreSQL starts on it at 127.0.0.1:--port, replays to --time and is promoted.
sitectl prints how to reach it and how to remove it. The live database is never a
destination: copying rows back is the operator's choice. A time outside the recovery
window is refused, naming the window. A failed restore leaves nothing behind.

--replace replaces the site's replicated rows with the restored ones and re-joins
replication, as site rebuild --force does (a new generation, the peers' rows, its
own rows back from the peer, then those of the restored copy that are still missing
there: rows deleted since --time; the peers get them too; verified everywhere). It
prints the plan and what is lost, then needs --i-understand-data-loss, or on a
terminal the site's name typed; without either it changes nothing and exits 1 (off
a terminal before restoring anything). --dry-run restores, prints the plan and the
rows lost, and changes nothing (exit 2). The scratch server is removed afterwards.
See docs/backup.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			at, err := parseRestoreTime(o.at)
			if err != nil {
				return err
			}
			f := siteFlags{names: []string{o.site}, required: true}
			topo, jobs, err := g.backupJobs(&f, &bf)
			if err != nil {
				return err
			}
			if o.replace && !o.understand && !o.dryRun && !isTerminal(g.streams.In) {
				return &ExitError{Code: 1, Err: errReplaceRefused}
			}
			sc, err := restoreIntoScratch(cmd.Context(), g, topo, jobs[0], o, at)
			if err != nil {
				return err
			}
			if o.replace {
				defer sc.remove(cmd.Context())
				return runRestoreReplace(cmd.Context(), g, topo, sc, o)
			}
			t, live := sc.target, topo.Site(sc.target.Site).Postgres
			if ok, err := g.printStructured(sc.restored); ok {
				return err
			}
			fmt.Fprintf(g.streams.Out, "%s restored as of %s (base backup %s) in %s.\n", t.Site, at.UTC().Format(time.RFC3339Nano), sc.restored.BackupID, sc.restored.Took.Round(time.Millisecond))
			fmt.Fprintf(g.streams.Out, "Scratch PostgreSQL: psql %q (the live database's password)\n", sc.scratch.DSN(live.User, live.Database))
			fmt.Fprintf(g.streams.Out, "Remove it: runuser -u postgres -- %s/pg_ctl -D %s stop && rm -rf %s\n", backup.PGBinDir, sc.dest, sc.dest)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.site, "site", "", "the site whose database to restore")
	cmd.Flags().StringVar(&o.at, "time", "", "restore the database as it was at this time (RFC 3339, or local \"YYYY-MM-DD HH:MM:SS\")")
	cmd.Flags().StringVar(&o.dir, "dir", "/var/lib/barman/restore", "where the scratch data directory is made, on the backup server")
	cmd.Flags().IntVar(&o.port, "port", 55432, "the scratch server's port on 127.0.0.1")
	cmd.Flags().BoolVar(&o.replace, "replace", false, "replace the site's live replicated rows with the restored ones and re-join replication (asks for confirmation)")
	cmd.Flags().BoolVar(&o.understand, "i-understand-data-loss", false, "with --replace: confirm without a terminal that the rows the plan names as lost are lost")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "with --replace: restore into scratch, print the plan and the rows lost, change nothing")
	cmd.Flags().DurationVar(&o.wait, "wait", 2*time.Minute, "with --replace: give up when a copy or the verification makes no progress for this long")
	bf.add(cmd, g.environ)
	_ = cmd.MarkFlagRequired("site")
	_ = cmd.MarkFlagRequired("time")
	return cmd
}

// scratchCopy is a restore into a scratch server that answers.
type scratchCopy struct {
	target   backup.Target
	restored backup.Restored
	scratch  *backup.LocalScratch
	dest     string
	password []byte
}

// remove stops the scratch server and deletes its directory, also after Ctrl-C
// (the command's context is cancelled by then, and pg_ctl must stop the server
// before its directory goes).
func (sc *scratchCopy) remove(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_ = sc.scratch.Remove(rctx)
	_ = os.RemoveAll(sc.dest)
}

// restoreIntoScratch recovers the job's site as of at into a new scratch server and
// waits until it answers; a failure leaves nothing behind.
func restoreIntoScratch(ctx context.Context, g *globals, topo *sites.Topology, j backupJob, o restoreOptions, at time.Time) (_ *scratchCopy, err error) {
	t, r := j.Target, j.Runner
	live := topo.Site(t.Site).Postgres
	sc := &scratchCopy{target: t, scratch: &backup.LocalScratch{Port: o.port, RunAs: "postgres"}, dest: scratchDir(o.dir, t.Site)}
	defer func() {
		if err != nil {
			sc.remove(ctx)
		}
	}()
	if sc.restored, err = backup.Restore(ctx, r, t, backup.RestoreOptions{Time: at, Dest: sc.dest, Live: liveOrNil(topo.Site(t.Site)), Progress: g.progress()}); err != nil {
		return nil, err
	}
	if err := sc.scratch.Start(ctx, sc.dest); err != nil {
		return nil, err
	}
	if sc.password, err = live.Password.Resolve(); err != nil {
		return nil, fmt.Errorf("site %s: postgres.password (to check the scratch server): %w", t.Site, err)
	}
	if err := sc.scratch.Wait(ctx, sc.scratch.DSN(live.User, live.Database), string(sc.password)); err != nil {
		return nil, err
	}
	return sc, nil
}

func newDrillRestoreCommand(g *globals) *cobra.Command {
	var f siteFlags
	var bf barmanFlags
	var dir, report string
	var port, rows int
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Prove a point-in-time restore: write marked rows, note the time, delete them, restore to before the delete into scratch, verify",
		Long: `Per site: writes --rows marked rows (table ` + backup.DrillTable + `), notes the time and counts
the rows of every table per owning site, writes --rows more and deletes the first ones
"by mistake", restores the database as of the noted time into a scratch PostgreSQL,
and checks every row before the point is there, none after, the counts per table and
owning site match, and the live database kept the delete. The scratch server is
removed afterwards, also on failure or Ctrl-C. A site whose drill cannot run is a
FAIL and the others still run. --report writes the reports as an HTML page.
Exit code 1 when a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, jobs, err := g.backupJobs(&f, &bf)
			if err != nil {
				return err
			}
			reports := make([]backup.DrillReport, 0, len(jobs))
			for _, j := range jobs {
				reports = append(reports, drillRestoreSite(cmd.Context(), g, topo, j, backup.DrillOptions{
					Scratch: &backup.LocalScratch{Port: port, RunAs: "postgres"}, Dest: scratchDir(dir, j.Site), Rows: rows}))
			}
			return reportDrillRestore(g, reports, report)
		},
	}
	f.add(cmd, "drill", true)
	cmd.Flags().StringVar(&dir, "dir", "/var/lib/barman/restore", "where the scratch data directory is made, on the backup server")
	cmd.Flags().IntVar(&port, "port", 55432, "the scratch server's port on 127.0.0.1")
	cmd.Flags().IntVar(&rows, "rows", 1000, "marked rows written before the point (and again after)")
	cmd.Flags().StringVar(&report, "report", "", "also write the reports as a self-contained HTML page to this file")
	bf.add(cmd, g.environ)
	return cmd
}

// drillRestoreSite runs the drill at one site; a drill that cannot run is a
// failed report naming why.
func drillRestoreSite(ctx context.Context, g *globals, topo *sites.Topology, j backupJob, o backup.DrillOptions) backup.DrillReport {
	live, err := liveConfig(topo.Site(j.Site))
	if err == nil {
		o.Live, o.Runner, o.Target, o.Progress = live, j.Runner, j.Target, g.progress()
		var rep backup.DrillReport
		if rep, err = backup.DrillRestore(ctx, o); err == nil {
			return rep
		}
	}
	return backup.DrillReport{Site: j.Site, Problems: []string{"the drill could not run: " + err.Error()}}
}

// reportDrillRestore prints the reports (text or structured), writes the HTML page
// when asked, and fails when a site failed.
func reportDrillRestore(g *globals, reports []backup.DrillReport, report string) error {
	failed := false
	for _, rep := range reports {
		failed = failed || !rep.Pass
	}
	if report != "" {
		page, err := backup.ReportHTML(reports, time.Now())
		if err == nil {
			err = os.WriteFile(report, page, 0o644)
		}
		if err != nil {
			return fmt.Errorf("--report %s: %w", report, err)
		}
	}
	if ok, err := g.printStructured(reports); !ok {
		for _, rep := range reports {
			verdict := "PASS"
			if !rep.Pass {
				verdict = "FAIL"
			}
			fmt.Fprintf(g.streams.Out, "%s %s: point %s; restored copy holds %d/%d rows before it, %d after; live kept the delete (%d left); %d tables×sites counted; recover %s, replay %s\n",
				verdict, rep.Site, rep.Point.UTC().Format(time.RFC3339Nano), rep.FoundBefore, rep.WrittenBefore, rep.FoundAfter, rep.LiveBefore, len(rep.Counts),
				rep.RecoverTook.Round(time.Millisecond), rep.StartTook.Round(time.Millisecond))
			for _, p := range rep.Problems {
				fmt.Fprintf(g.streams.Out, "  ✗ %s\n", p)
			}
		}
	} else if err != nil {
		return err
	}
	if failed {
		return &ExitError{Code: 1, Err: errors.New("drill restore failed"), Silent: true}
	}
	return nil
}
