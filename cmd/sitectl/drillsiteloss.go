package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/drill/live"
	"github.com/sitectl/sitectl/drill/siteloss"
	"github.com/sitectl/sitectl/replication/mongo"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

type siteLossOptions struct {
	site    string
	writes  int
	batch   int
	wait    time.Duration
	report  string
	confirm string
	mongo   bool
	// rollback allows the MongoDB part's forced reconfigs (a hub loss with
	// hub-and-spoke tunnels leaves no reachable primary).
	rollback bool
}

func newDrillSiteLossCommand(g *globals) *cobra.Command {
	var o siteLossOptions
	cmd := &cobra.Command{
		Use:   "site-loss",
		Short: "Destroy a site's database, keep the others writing, rebuild it from its peers, verify; RPO and RTO",
		Long: `Every site writes --writes rows of its own; then the site's database is destroyed (its
service stopped and its data volume deleted on the node that ran it); the other sites
keep writing and must keep accepting their own writes; the database is started again,
empty, and rebuilt from its peers (sitectl site rebuild); every acknowledged write that
had reached another site before the loss must be back at the site and everywhere.
When the site runs MongoDB, its members are lost with the database (services
stopped, volumes deleted) and rebuilt after it as site rebuild --mongo does (votes
removed one reconfig at a time, initial sync waited for, votes restored); the report
gives that part's reconfigs and time (--mongo=false leaves them alone).
Reports RPO (writes the lost site acknowledged that had reached no other site: count
and time window) and RTO (loss → rebuilt and verified). Works for a spoke and for the
hub. On a failure or Ctrl-C after the loss the database is started again and the
site rebuilt (resumed) so every site works; a second Ctrl-C stops that, then run
sitectl site rebuild for the site. The report goes to stdout (text, or
--output json); --report FILE also writes it: as an HTML page (timeline of the
phases, RTO, RPO, rows copied, verification per table and owner) when FILE ends in
.html, else as JSON. Exit code 1 when a check fails.
A production environment needs --confirm production.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDrillSiteLoss(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.site, "site", "", "the site whose database is destroyed and rebuilt")
	_ = cmd.MarkFlagRequired("site")
	f.IntVar(&o.writes, "writes", 1000, "rows each site writes before the loss, and each other site during it")
	f.IntVar(&o.batch, "batch", 1, "rows per transaction of the drill's writes (1: every row acknowledged alone; more: one multi-row INSERT each, for large --writes)")
	f.DurationVar(&o.wait, "wait", 2*time.Minute, "give up when the rebuild or the verification makes no progress for this long")
	f.StringVar(&o.report, "report", "", "also write the report to this file: an HTML page when it ends in .html, else JSON")
	f.BoolVar(&o.mongo, "mongo", true, "also lose the site's MongoDB members and rebuild them (site rebuild --mongo's part) when the site runs MongoDB; --mongo=false leaves them alone")
	f.BoolVar(&o.rollback, "i-understand-rollback", false, "let the MongoDB part force its reconfigs when no primary is reachable (a hub loss): writes a member took without a majority may be rolled back; as site rebuild --mongo --i-understand-rollback")
	f.StringVar(&o.confirm, "confirm", "", "the environment name, required to drill production (--confirm production)")
	return cmd
}

func runDrillSiteLoss(ctx context.Context, g *globals, o siteLossOptions) error {
	topo, err := g.loadTopology()
	if err != nil {
		return err
	}
	if topo.Env == "production" && o.confirm != "production" {
		return errors.New("drill site-loss destroys a site's database: the environment is production: add --confirm production")
	}
	if o.writes < 1 {
		return fmt.Errorf("--writes %d: each site writes at least 1 row", o.writes)
	}
	if o.batch < 1 {
		return fmt.Errorf("--batch %d: rows per transaction must be at least 1 (1: every row its own transaction)", o.batch)
	}
	loser, closeEngines, err := live.SiteLoser(ctx, topo, o.site)
	if err != nil {
		return err
	}
	defer closeEngines()
	sess := postgres.NewSession(topo)
	defer sess.Close()
	prog := g.progress()
	opts := siteloss.Options{Site: o.site, Writes: o.writes, Batch: o.batch, Loser: loser, Wait: o.wait}
	if prog != nil {
		opts.Progress = prog.Status
	}
	if s := topo.Site(o.site); o.mongo && s.HasStack("mongo") && len(s.Mongo.Members) > 0 {
		m, closeMongo, err := siteLossMongo(ctx, topo, o, opts.Progress)
		if err != nil {
			return err
		}
		defer closeMongo()
		opts.Mongo = m
	}
	r, runErr := siteloss.Run(ctx, topo, sess, opts)
	if r.NeedsRecovery() {
		recoverSite(ctx, g, r, o)
	}
	if o.report != "" {
		var b bytes.Buffer
		write := func() error { return writeJSON(&b, r) }
		if ext := strings.ToLower(filepath.Ext(o.report)); ext == ".html" || ext == ".htm" {
			write = func() error { return r.WriteHTML(&b) }
		}
		if err := write(); err != nil {
			return err
		}
		if err := os.WriteFile(o.report, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write the report to %s: %w", o.report, err)
		}
	}
	if ok, err := g.printStructured(r); !ok && err == nil {
		fmt.Fprintln(g.streams.Out, r.Summary())
	} else if err != nil {
		return err
	}
	switch {
	case runErr != nil:
		return &ExitError{Code: 1, Err: fmt.Errorf("drill site-loss %s: %w (if the loss happened: sitectl site rebuild %s)", o.site, runErr, o.site)}
	case !r.Passed:
		return &ExitError{Code: 1, Silent: true}
	}
	return nil
}

// recoverSite leaves the sites working after a drill stopped (a failure, Ctrl-C)
// between the loss and the end of the rebuild: the site's database started again
// and rebuilt (siteloss Recover), under a context of its own: the drill's may be
// cancelled by the first Ctrl-C; a second one stops the recovery.
func recoverSite(ctx context.Context, g *globals, r *siteloss.Report, o siteLossOptions) {
	fmt.Fprintf(g.streams.Err, "drill site-loss stopped after %s's loss: starting its database again and rebuilding it, so every site works (Ctrl-C again to stop; then run sitectl site rebuild %s)\n", o.site, o.site)
	rctx, stop := signal.NotifyContext(context.WithoutCancel(ctx), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rctx, cancel := context.WithTimeout(rctx, 5*time.Minute+3*o.wait)
	defer cancel()
	if err := r.Recover(rctx); err != nil {
		fmt.Fprintf(g.streams.Err, "could not bring %s back: %v\n", o.site, err)
		return
	}
	fmt.Fprintf(g.streams.Err, "%s rebuilt after the stopped drill (%.1fs): every site works again\n", o.site, r.Recovery.Seconds)
}

// siteLossMongo is the drill's MongoDB part for a site running MongoDB: its mongod
// services lost with their volumes, then rebuilt as site rebuild --mongo does.
func siteLossMongo(ctx context.Context, topo *sites.Topology, o siteLossOptions, progress func(key, text string)) (*siteloss.Mongo, func(), error) {
	loser, closeEngines, err := live.MongoLoser(ctx, topo, o.site)
	if err != nil {
		return nil, nil, err
	}
	conn := mongo.NewConn(topo)
	opts := mongo.RebuildOptions{Wait: o.wait, AllowForcedReconfig: o.rollback, Progress: progress}
	plan := func(ctx context.Context) (*mongo.Rebuild, error) { return conn.PlanRebuild(ctx, o.site, opts) }
	return &siteloss.Mongo{Loser: loser, Plan: plan}, func() { conn.Close(); closeEngines() }, nil
}
