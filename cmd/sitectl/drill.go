package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/live"
)

type drillOptions struct {
	site, node, service string
	duration, converge  time.Duration
	timeout             time.Duration
	writes              int
	report              string
	confirm             string
	mongo               bool
}

func newDrillCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Run a failure drill (partition, cloud-loss, db-down, node-loss) and verify the data survived",
		Long: `A drill injects a fault, has every site write its own rows (UUIDv7 keys) while the fault
is in place, ALWAYS removes the fault (on success, on a failing step, on Ctrl-C/SIGTERM, on
timeout), waits for replication to converge and verifies that every acknowledged write is
present exactly once at every site that should hold it. The report goes to stdout (text,
or --output json) and, with --report, to an HTML page with a timeline. The exit code is 1
when any check fails. A production environment needs --confirm production.`,
	}
	cmd.AddCommand(
		newDrillKindCommand(g, "partition", "Cut a site's tunnels, write on both sides, heal, verify", true, false),
		newDrillKindCommand(g, "cloud-loss", "Cut every tunnel to the hub: the spokes keep serving and writing; heal, verify", false, false),
		newDrillKindCommand(g, "db-down", "Stop a site's database service, report what fails and what keeps working, restore, verify", true, false),
		newDrillKindCommand(g, "node-loss", "Drain a swarm node, watch services reschedule, restore, verify", true, true),
	)
	return cmd
}

func newDrillKindCommand(g *globals, kind, short string, needSite, needNode bool) *cobra.Command {
	o := &drillOptions{}
	cmd := &cobra.Command{
		Use:   kind,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDrill(cmd.Context(), g, kind, o)
		},
	}
	f := cmd.Flags()
	if needSite {
		f.StringVar(&o.site, "site", "", "the site the drill is about")
		_ = cmd.MarkFlagRequired("site")
	}
	if needNode {
		f.StringVar(&o.node, "node", "", "the swarm node to drain")
		_ = cmd.MarkFlagRequired("node")
	}
	if kind == "partition" || kind == "cloud-loss" {
		f.BoolVar(&o.mongo, "mongo", false, "also write to MongoDB with write concern majority from every site and report which side could write")
	}
	if kind == "db-down" {
		f.StringVar(&o.service, "service", live.DefaultDBService, "the database service to stop")
	}
	f.DurationVar(&o.duration, "duration", 60*time.Second, "how long the fault lasts")
	f.IntVar(&o.writes, "writes", 1000, "rows each site writes during the fault")
	f.DurationVar(&o.converge, "converge-timeout", 2*time.Minute, "how long to wait for convergence after the heal")
	f.DurationVar(&o.timeout, "timeout", 0, "abort (and heal) after this long (default: duration + converge-timeout + 2m)")
	f.StringVar(&o.report, "report", "", "also write the report as an HTML page with a timeline to this file")
	f.StringVar(&o.confirm, "confirm", "", "the environment name, required to drill production (--confirm production)")
	return cmd
}

func runDrill(ctx context.Context, g *globals, kind string, o *drillOptions) error {
	topo, err := g.loadTopology()
	if err != nil {
		return err
	}
	if topo.Env == "production" && o.confirm != "production" {
		return &ExitError{Code: 1, Err: fmt.Errorf("drill %s in production cuts real links and writes real rows: add --confirm production to go ahead", kind)}
	}
	if o.writes <= 0 || o.duration <= 0 {
		return fmt.Errorf("drill %s: --writes and --duration must be positive", kind)
	}
	timeout := o.timeout
	if timeout <= 0 {
		timeout = o.duration + o.converge + 2*time.Minute
	}
	// The deadline (like SIGINT/SIGTERM, which cancel ctx in main) stops the drill;
	// the drill then heals with fresh contexts of its own.
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("drill timed out after %s (--timeout)", timeout))
	defer cancel()
	d, closeAll, err := live.Build(ctx, topo, live.Options{Kind: kind, Site: o.site, Node: o.node, Service: o.service, Mongo: o.mongo,
		Settings: drill.Settings{Duration: o.duration, Writes: o.writes, Converge: o.converge}, Progress: g.progress()})
	if err != nil {
		return err
	}
	defer closeAll()
	rep := d.Run(ctx)
	if o.report != "" {
		if err := writeHTMLReport(o.report, rep); err != nil {
			fmt.Fprintf(g.streams.Err, "sitectl: write %s: %v\n", o.report, err)
		}
	}
	if ok, err := g.printStructured(rep); ok {
		if err != nil {
			return err
		}
	} else {
		printDrillText(g, rep)
	}
	if !rep.Passed {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s", rep.Summary()), Silent: true}
	}
	return nil
}

func writeHTMLReport(path string, rep *drill.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := drill.WriteHTML(f, rep); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func printDrillText(g *globals, r *drill.Report) {
	w := g.streams.Out
	fmt.Fprintln(w, r.Summary())
	if r.HealFailed {
		fmt.Fprintln(w, "!!! HEAL FAILED — a fault is still in place:")
		for _, h := range r.Heal {
			if !h.Healed {
				fmt.Fprintf(w, "!!!   %s: %s\n", h.Link, h.Error)
			}
		}
	}
	for _, c := range r.Preflight {
		if !c.Passed {
			fmt.Fprintf(w, "  preflight ✗ %s: %s\n", c.Name, c.Detail)
		}
	}
	if r.Verdict != nil {
		for _, c := range r.Verdict.Checks {
			mark := "✓"
			if !c.Passed {
				mark = "✗"
			}
			fmt.Fprintf(w, "  %s %-16s %s\n", mark, c.Name, c.Detail)
		}
	}
	for _, o := range r.Observations {
		mark := "✓"
		if !o.OK {
			mark = "✗"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, o.What, o.Detail)
	}
	if r.Mongo != nil {
		for _, s := range r.Mongo.Sides {
			fmt.Fprintf(w, "  mongodb %v (votes %d): %s\n", s.Sites, s.Votes, s.Outcome)
		}
	}
	if r.HealToConverged != nil {
		fmt.Fprintf(w, "  heal → converged %.2fs", float64(*r.HealToConverged))
		if r.HealToCaughtUp != nil {
			fmt.Fprintf(w, " (PostgreSQL caught up %.2fs)", float64(*r.HealToCaughtUp))
		}
		fmt.Fprintln(w)
	}
}
