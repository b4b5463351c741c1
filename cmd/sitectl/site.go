package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/mongo"
	"github.com/sitectl/sitectl/replication/postgres"
)

func newSiteCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Whole-site recovery: rebuild a lost site's database from its peers",
		Long: `A site that is lost for good (burnt, flooded, disks gone) is redeployed on new machines
with the same configuration, then its database is rebuilt from its peers: every spoke's
rows are at the hub, the hub's rows at every spoke. The rebuilt site gets a new
generation; an old instance that comes back is fenced: plan and deploy refuse it.`,
	}
	cmd.AddCommand(newSiteRebuildCommand(g), newSiteReconcileCommand(g))
	return cmd
}

type siteRebuildOptions struct {
	force   bool
	dryRun  bool
	wait    time.Duration
	confirm string
	// mongo adds the MongoDB part (siterebuildmongo.go); rollback acknowledges its
	// forced reconfigs when no primary is reachable.
	mongo, rollback bool
}

func newSiteRebuildCommand(g *globals) *cobra.Command {
	var o siteRebuildOptions
	cmd := &cobra.Command{
		Use:   "rebuild SITE",
		Short: "Rebuild a lost site's PostgreSQL from its peers, verify it, fence its old instance",
		Long: `For a site whose database was lost and replaced by an empty one (the site redeployed on
new machines, same configuration). Prints the plan, then applies it:

  a new generation for the site, recorded in every site's database (an old instance
  that comes back is then refused by plan and deploy);
  the peers' subscriptions to the old instance dropped (their slots died with it);
  the schema; the site's subscriptions with their initial copy (the other sites' rows),
  running while the site's own rows are copied back from a peer that holds them (the
  hub, for a spoke; for the hub, the spoke holding most of them);
  with the hub's subscriptions paused (a spoke's bring nothing it publishes): its
  publications and slots, the rows a peer lacks copied to it, the peers' subscriptions
  without initial copy (nothing is copied twice); then its subscriptions resumed;
  verification: per table and owning site, row count and checksum equal on every site.

Progress (rows copied, rate) goes to stderr. Every replicating site's database must
answer. A rebuild that stops half-way is recorded; re-running resumes it and copies
nothing twice. No row is ever deleted on another site. A database that still holds
replicated rows or replication objects is refused unless --force (then they are
dropped there first). --dry-run prints the plan only (exit 2: changes pending).

--mongo adds the MongoDB part: the site's members lose their votes (votes 0,
priority 0) one reconfig at a time, are re-added when their mongod is back empty
(initial sync, waited for until SECONDARY and caught up), then get their votes back
one reconfig at a time. When no primary is reachable those reconfigs are forced
(the guard of mongo declare-authoritative), which needs --i-understand-rollback.
Refused while the site's members still answer as healthy voting members, unless
--force. See docs/site-rebuild.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runSiteRebuild(cmd.Context(), g, args[0], o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.force, "force", false, "rebuild even if the site's database still holds replicated rows or replication objects (dropped there first)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the rebuild plan and change nothing")
	f.DurationVar(&o.wait, "wait", 2*time.Minute, "give up when an initial copy or the verification makes no progress for this long")
	f.StringVar(&o.confirm, "confirm", "", "the environment name, required to rebuild in production (--confirm production)")
	f.BoolVar(&o.mongo, "mongo", false, "also rebuild the site's MongoDB members (votes removed, initial sync, votes restored)")
	f.BoolVar(&o.rollback, "i-understand-rollback", false, "with --mongo: allow forced reconfigs when no primary is reachable (writes taken without a majority may be rolled back)")
	return cmd
}

// rebuildResult is what --output json prints.
type rebuildResult struct {
	*postgres.Rebuild
	Plan    *plan.Plan `json:"plan"`
	Applied bool       `json:"applied"`
	TookSec float64    `json:"took_seconds,omitempty"`
	Error   string     `json:"error,omitempty"`

	// Mongo is the MongoDB part (--mongo).
	Mongo *mongo.Rebuild `json:"mongo,omitempty"`
}

func runSiteRebuild(ctx context.Context, g *globals, site string, o siteRebuildOptions) error {
	topo, err := g.loadTopology()
	if err != nil {
		return err
	}
	if topo.Site(site) == nil {
		return fmt.Errorf("site rebuild: no site %q in the configuration (sites: %v)", site, topo.SiteNames())
	}
	if topo.Env == "production" && !o.dryRun && o.confirm != "production" {
		return errors.New("site rebuild: the environment is production: add --confirm production (or --dry-run to see the plan)")
	}
	sess := postgres.NewSession(topo)
	defer sess.Close()
	prog := g.progress()
	opts := postgres.RebuildOptions{Force: o.force, Wait: o.wait}
	if prog != nil {
		opts.Progress = prog.Status
	}
	mr, closeMongo, err := planSiteRebuildMongo(ctx, topo, site, o, prog)
	if err != nil {
		return err
	}
	defer closeMongo()
	r, err := postgres.PlanRebuild(ctx, topo, sess, site, opts)
	if err != nil {
		return err
	}
	addMongoSteps(r, mr)
	res := &rebuildResult{Rebuild: r, Plan: r.Plan(topo.Env), Mongo: mr}
	if o.dryRun {
		return g.printRebuild(res, &ExitError{Code: 2, Silent: true})
	}
	if !g.structured() {
		if err := res.Plan.Render(g.streams.Out); err != nil {
			return err
		}
	}
	began := time.Now()
	err = r.Run(ctx, func(st plan.Step) func(error) { return prog.Step("%s: %s", st.Site, st) })
	res.Applied, res.TookSec = err == nil, time.Since(began).Seconds()
	if err != nil {
		res.Error = err.Error()
		return g.printRebuild(res, &ExitError{Code: 1, Err: err})
	}
	if !g.structured() {
		fmt.Fprintf(g.streams.Out, "%s rebuilt (generation %d) in %s: %d rows copied by sitectl (%.0f rows/s), %d (table, owner) pairs verified equal on every site\n",
			site, r.Generation, time.Since(began).Round(time.Second), r.Rows(), float64(r.Rows())/max(res.TookSec, 0.001), len(r.Verified))
		fmt.Fprint(g.streams.Out, mongoRebuildSummary(mr))
	}
	return g.printRebuild(res, nil)
}

// printRebuild prints the result as JSON/YAML when asked (text was printed as it
// went) and returns ret.
func (g *globals) printRebuild(res *rebuildResult, ret error) error {
	ok, err := g.printStructured(res)
	if err != nil {
		return err
	}
	if !ok && !res.Applied && res.Error == "" {
		if err := res.Plan.Render(g.streams.Out); err != nil {
			return err
		}
	}
	return ret
}

// structured reports whether --output asks for JSON or YAML.
func (g *globals) structured() bool { return g.output == "json" || g.output == "yaml" }

type siteReconcileOptions struct {
	fromOld string
	wait    time.Duration
	confirm string
}

func newSiteReconcileCommand(g *globals) *cobra.Command {
	var o siteReconcileOptions
	cmd := &cobra.Command{
		Use:   "reconcile SITE --from-old HOST:PORT",
		Short: "Copy a fenced old instance's unreplicated rows into the rebuilt site, then retire it",
		Long: `For an old instance of a rebuilt site that came back (a long partition taken for a loss,
disks recovered), which plan and deploy refuse. Reads, from the old instance at
HOST:PORT (same database, user and password as the site's configuration), the rows
the site owns that the rebuilt site lacks, and inserts them at the rebuilt site
(UUIDv7 keys cannot collide; nothing there is changed or deleted); they replicate from
there to every site. Then the old instance is retired: its subscriptions disabled, its
generation marked retired (plan and deploy keep refusing it); and every site is
verified by count and checksum per table and owner. Stop and delete the old instance
afterwards.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runSiteReconcile(cmd.Context(), g, args[0], o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.fromOld, "from-old", "", "HOST:PORT of the old instance's PostgreSQL")
	_ = cmd.MarkFlagRequired("from-old")
	f.DurationVar(&o.wait, "wait", 2*time.Minute, "how long the verification waits for replication")
	f.StringVar(&o.confirm, "confirm", "", "the environment name, required in production (--confirm production)")
	return cmd
}

func runSiteReconcile(ctx context.Context, g *globals, site string, o siteReconcileOptions) error {
	topo, err := g.loadTopology()
	if err != nil {
		return err
	}
	s := topo.Site(site)
	if s == nil {
		return fmt.Errorf("site reconcile: no site %q in the configuration (sites: %v)", site, topo.SiteNames())
	}
	if topo.Env == "production" && o.confirm != "production" {
		return errors.New("site reconcile: the environment is production: add --confirm production")
	}
	host, portText, err := net.SplitHostPort(o.fromOld)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil || host == "" || port <= 0 || port > 65535 {
		return fmt.Errorf("--from-old %q: give the old instance's PostgreSQL as HOST:PORT (e.g. 10.10.1.20:5432)", o.fromOld)
	}
	oldSite := *s
	oldSite.Postgres.Host, oldSite.Postgres.Port = host, port
	old, err := postgres.Connect(ctx, &oldSite)
	if err != nil {
		return fmt.Errorf("site reconcile %s: the old instance: %w", site, err)
	}
	defer old.Close()
	sess := postgres.NewSession(topo)
	defer sess.Close()
	done := g.progress().Step("reconcile %s from its old instance at %s", site, o.fromOld)
	r, err := postgres.ReconcileOld(ctx, topo, sess, site, old, o.wait)
	done(err)
	if r != nil {
		if ok, perr := g.printStructured(r); perr != nil {
			return perr
		} else if !ok && err == nil {
			deleted, changed := r.Skipped()
			fmt.Fprintf(g.streams.Out, "%d rows of %s copied from its old instance (generation %d) into generation %d; not copied: %d deleted since the rebuild, %d changed there (the rebuilt rows kept; --output json lists their keys); the old instance is retired; %d (table, owner) pairs verified equal on every site\n",
				r.Rows(), site, r.OldGeneration, r.Generation, deleted, changed, len(r.Verified))
		}
	}
	return err
}
