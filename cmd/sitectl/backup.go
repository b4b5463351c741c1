package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/backup"
	pgrepl "github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// barmanFlags say how sitectl reaches Barman: today the barman program of the host
// sitectl runs on (the backup server), with that server's configuration file.
type barmanFlags struct {
	config string
}

func (b *barmanFlags) add(cmd *cobra.Command, environ []string) {
	cmd.Flags().StringVar(&b.config, "barman-config", envOr(environ, "SITECTL_BARMAN_CONFIG", ""),
		"barman.conf of the backup server this host runs (env SITECTL_BARMAN_CONFIG)")
}

func (b *barmanFlags) runner(server string) (backup.Runner, error) {
	if b.config == "" {
		return nil, errors.New("--barman-config is empty: sitectl reaches Barman on the host it runs on (the backup server); give that server's barman.conf with --barman-config or SITECTL_BARMAN_CONFIG (reaching the Barman container of the backup stack is not built yet)")
	}
	return backup.Local{Config: b.config, Label: "barman at " + server}, nil
}

// backedUp are the selected sites that have a backup server; selecting none of them
// is an error naming the sites that do.
// backupJob is a backed-up site with the Barman that holds its backups.
type backupJob struct {
	backup.Target
	Runner backup.Runner
}

// backupJobs loads the sites f selects and, for each that is backed up, its Barman.
func (g *globals) backupJobs(f *siteFlags, bf *barmanFlags) (*sites.Topology, []backupJob, error) {
	topo, selected, err := g.loadSelected(f)
	if err != nil {
		return nil, nil, err
	}
	targets, err := backedUp(topo, selected)
	if err != nil {
		return nil, nil, err
	}
	jobs := make([]backupJob, 0, len(targets))
	for _, t := range targets {
		r, err := bf.runner(t.Backup.Server)
		if err != nil {
			return nil, nil, err
		}
		jobs = append(jobs, backupJob{Target: t, Runner: r})
	}
	return topo, jobs, nil
}

func backedUp(topo *sites.Topology, selected []*sites.Site) ([]backup.Target, error) {
	var out []backup.Target
	var all []string
	for _, s := range topo.Sites {
		if s.Backup.Enabled() {
			all = append(all, s.Name)
		}
	}
	for _, s := range selected {
		if s.Backup.Enabled() {
			out = append(out, backup.TargetOf(s))
		}
	}
	if len(out) == 0 {
		if len(all) == 0 {
			return nil, errors.New("no site is backed up: set backup.server in a site's config (the site whose Barman backs it up)")
		}
		return nil, fmt.Errorf("none of the selected sites is backed up (backed up: %s)", strings.Join(all, ", "))
	}
	return out, nil
}

func newBackupCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Backups of every site's PostgreSQL with Barman on another site: status, run, list",
		Long: `Each site's database is backed up by the Barman server of another site (backup.server):
WAL streams continuously through a physical replication slot bounded by
backup.max_slot_wal_keep_size, and base backups are taken at least every
backup.schedule. See docs/backup.md.`,
	}
	cmd.AddCommand(newBackupStatusCommand(g), newBackupRunCommand(g), newBackupListCommand(g))
	return cmd
}

func newBackupStatusCommand(g *globals) *cobra.Command {
	var f siteFlags
	var bf barmanFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Per site: last base backup, WAL streaming and lag, recovery window, retention",
		Long: `Exit code 0 when every selected site has a base backup within its schedule, WAL
streaming through a healthy slot; 1 otherwise (also when its Barman cannot be reached).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, jobs, err := g.backupJobs(&f, &bf)
			if err != nil {
				return err
			}
			var all []backup.Status
			failed := false
			for _, j := range jobs {
				t, r := j.Target, j.Runner
				st := backup.GetStatus(cmd.Context(), r, t, time.Now())
				slot, err := siteSlot(cmd.Context(), topo.Site(t.Site))
				st.AddSlot(slot, t.Backup.MaxSlotWALKeepSize, err)
				failed = failed || !st.OK()
				all = append(all, st)
			}
			if ok, err := g.printStructured(all); ok {
				if err == nil && failed {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			printBackupStatus(g, all)
			if failed {
				return &ExitError{Code: 1, Silent: true}
			}
			return nil
		},
	}
	f.add(cmd, "show", false)
	bf.add(cmd, g.environ)
	return cmd
}

func printBackupStatus(g *globals, all []backup.Status) {
	w := tabwriter.NewWriter(g.streams.Out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(w, "SITE\tSERVER\tLAST BACKUP\tSIZE\tTOOK\tWAL STREAMING\tLAG\tRECOVERY WINDOW\tRETENTION")
	for _, st := range all {
		last, size, took := "none", "-", "-"
		if st.Last != nil {
			last = st.Last.End.Local().Format(time.DateTime)
			size = fmt.Sprintf("%.1f MiB", float64(st.Last.SizeBytes)/(1<<20))
			took = st.Last.Duration.String()
		}
		window := "-"
		if !st.WindowFrom.IsZero() {
			window = st.WindowFrom.Local().Format(time.DateTime) + " → " + st.WindowTo.Local().Format(time.DateTime)
		}
		stream := st.StreamingState
		if stream == "" {
			stream = "not running"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d B\t%s\t%s\n", st.Site, st.Server, last, size, took, stream, st.LagBytes, window, st.Retention)
	}
	_ = w.Flush()
	for _, st := range all {
		for _, p := range st.Problems {
			fmt.Fprintf(g.streams.Out, "✗ %s: %s\n", st.Site, p)
		}
		if st.SlotError != "" {
			fmt.Fprintf(g.streams.Out, "? %s: slot not read in the site's database: %s\n", st.Site, st.SlotError)
		}
	}
}

func newBackupRunCommand(g *globals) *cobra.Command {
	var f siteFlags
	var bf barmanFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Take a base backup of a site now (pg_basebackup through the replication protocol)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, jobs, err := g.backupJobs(&f, &bf)
			if err != nil {
				return err
			}
			var out []backup.BaseBackup
			for _, j := range jobs {
				t, r := j.Target, j.Runner
				b, err := backup.RunBackup(cmd.Context(), r, t, g.progress())
				if err != nil {
					return err
				}
				out = append(out, b)
				if g.output == "text" {
					fmt.Fprintf(g.streams.Out, "%s: base backup %s, %.1f MiB, took %s\n", t.Site, b.ID, float64(b.SizeBytes)/(1<<20), b.Duration)
				}
			}
			if g.output != "text" {
				_, err := g.printStructured(out)
				return err
			}
			return nil
		},
	}
	f.add(cmd, "back up", true)
	bf.add(cmd, g.environ)
	return cmd
}

func newBackupListCommand(g *globals) *cobra.Command {
	var f siteFlags
	var bf barmanFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the base backups of each backed-up site",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, jobs, err := g.backupJobs(&f, &bf)
			if err != nil {
				return err
			}
			type siteBackups struct {
				Site    string              `json:"site"`
				Backups []backup.BaseBackup `json:"backups"`
			}
			var all []siteBackups
			for _, j := range jobs {
				t, r := j.Target, j.Runner
				list, err := backup.ListBackups(cmd.Context(), r, t.Site)
				if err != nil {
					return err
				}
				all = append(all, siteBackups{Site: t.Site, Backups: list})
			}
			if ok, err := g.printStructured(all); ok {
				return err
			}
			w := tabwriter.NewWriter(g.streams.Out, 0, 2, 2, ' ', 0)
			fmt.Fprintln(w, "SITE\tBACKUP\tENDED\tSIZE")
			for _, s := range all {
				for _, b := range s.Backups {
					fmt.Fprintf(w, "%s\t%s\t%s\t%.1f MiB\n", s.Site, b.ID, b.End.Local().Format(time.DateTime), float64(b.SizeBytes)/(1<<20))
				}
			}
			return w.Flush()
		},
	}
	f.add(cmd, "list", false)
	bf.add(cmd, g.environ)
	return cmd
}

// siteSlot reads the backup slot in site s's own database (wal_status "lost": the
// max_slot_wal_keep_size bound was hit).
func siteSlot(ctx context.Context, s *sites.Site) (*backup.SlotState, error) {
	pool, err := pgrepl.Connect(ctx, s)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return backup.ReadSlot(ctx, pool, s.Backup.SlotName(s.Name))
}

// liveConfig reaches site s's live database from where sitectl runs.
func liveConfig(s *sites.Site) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=%s", s.Postgres.Host, s.Postgres.Port, s.Postgres.User, s.Postgres.Database, s.Postgres.SSLMode))
	if err != nil {
		return nil, fmt.Errorf("site %s: postgres: %w", s.Name, err)
	}
	pw, err := s.Postgres.Password.Resolve()
	if err != nil {
		return nil, fmt.Errorf("site %s: postgres.password: %w", s.Name, err)
	}
	cfg.Password = string(pw)
	return cfg, nil
}

// scratchDir is where a restore of site goes under dir, one folder per run.
func scratchDir(dir, site string) string {
	return filepath.Join(dir, "sitectl-restore-"+site+"-"+time.Now().UTC().Format("20060102T150405"))
}
