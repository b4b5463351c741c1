package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/live"
	"github.com/sitectl/sitectl/sites"
)

type drillOptions struct {
	site, node, service string
	duration, converge  time.Duration
	timeout             time.Duration
	writes              int
	report              string
	confirm             string
	mongo               bool
	load                int // --load: requests/s per site through each gateway (drillload.go)
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
when any check fails. A production environment needs --confirm production.

The fault lasts --duration from the moment it took effect; the report shows when it was
asked for, in effect and removed. An interrupted drill says so on stderr in every output
mode and blames no site. Before injecting, a drill records its faults in the swarm of
every site they touch: a drill killed before it could heal (SIGKILL) leaves that record,
plan and status then warn, deploy and drill refuse, and 'sitectl drill heal' removes
what it left.`,
	}
	cmd.AddCommand(
		newDrillKindCommand(g, "partition", "Cut a site's tunnels, write on both sides, heal, verify", true, false),
		newDrillKindCommand(g, "cloud-loss", "Cut every tunnel to the hub: the spokes keep serving and writing; heal, verify", false, false),
		newDrillKindCommand(g, "db-down", "Stop a site's database service, report what fails and what keeps working, restore, verify", true, false),
		newDrillKindCommand(g, "node-loss", "Drain a swarm node, watch services reschedule, restore, verify", true, true),
		newDrillKindCommand(g, "api-kill", "Kill a running API task at a site: swarm replaces it, the gateway keeps answering; verify", true, false),
		newDrillSoakCommand(g),
		newDrillSiteLossCommand(g),
		newDrillHealCommand(g),
		newDrillRestoreCommand(g),
	)
	return cmd
}

func newDrillHealCommand(g *globals) *cobra.Command {
	var sf siteFlags
	cmd := &cobra.Command{
		Use:   "heal",
		Short: "Remove whatever a dead drill left (a cut tunnel, a stopped service, a drained node) and clear its record",
		Long: `Every drill records its faults in the swarm of each site they touch before it injects them,
and clears the record once it removed them. A drill that died before that (SIGKILL, a lost
machine, a heal that failed) leaves the record, and plan and status warn about it while
deploy and drill refuse to run. heal reads the records in the selected sites' swarms (every
site by default), removes each recorded fault the way the drill would have (tunnels
brought up, services scaled back, nodes made active again, then replication resumed),
and clears the record from every swarm that holds it. Running it again does nothing. It
refuses a record whose drill still runs (its process exists on this host, or it
refreshed the record within the last 45 s). Exit code 1 when something is still left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDrillHeal(cmd.Context(), g, sf) },
	}
	sf.add(cmd, "read drill records from", false)
	return cmd
}

func runDrillHeal(ctx context.Context, g *globals, sf siteFlags) error {
	topo, selected, err := g.loadSelected(&sf)
	if err != nil {
		return err
	}
	var names []string
	for _, s := range selected {
		names = append(names, s.Name)
	}
	out, unreadable := live.Heal(ctx, topo, names, g.progress())
	if out == nil {
		out = []live.HealOutcome{}
	}
	ok, err := g.printStructured(out)
	if err != nil {
		return err
	}
	var left []string
	for _, o := range out {
		if !o.Healed {
			left = append(left, o.Run)
		}
		if ok {
			continue
		}
		if o.Healed {
			fmt.Fprintf(g.streams.Out, "✓ %s drill run %s (%s): removed %s; record cleared\n", o.Drill, o.Run, o.Owner, o.Left)
		} else {
			fmt.Fprintf(g.streams.Out, "✗ %s drill run %s (%s): %s\n", o.Drill, o.Run, o.Owner, o.Error)
		}
	}
	for _, e := range unreadable {
		fmt.Fprintf(g.streams.Err, "sitectl: could not read drill records: %v\n", e)
	}
	if !ok && len(out) == 0 && len(unreadable) == 0 {
		fmt.Fprintln(g.streams.Out, "nothing to heal: no drill record in the swarms of "+strings.Join(names, ", "))
	}
	switch {
	case len(left) > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("still left by a drill: run(s) %s (see above)", strings.Join(left, ", ")), Silent: !ok}
	case len(unreadable) > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("could not read the drill records of %d site(s): what a drill left there is unknown", len(unreadable))}
	}
	return nil
}

// drillLeftovers reads the drill records in the named sites' swarms and says what
// drills left there: "a drill was killed at T and left: …; run sitectl drill heal"
// (or that one is running). plan and status only warn, on stderr, so their output
// stays what it was; deploy and drill (refuse) stop: a deploy would fight a fault
// a drill holds, a second drill would mix its faults with the first one's. A site
// whose swarm cannot be read is not reported here: the command reports it its own
// way.
func (g *globals) drillLeftovers(ctx context.Context, topo *sites.Topology, selected []*sites.Site, refuse bool, what string) error {
	msgs := leftoverMessages(ctx, topo, selected)
	if len(msgs) == 0 {
		return nil
	}
	if refuse {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s refused, nothing was changed: %s", what, strings.Join(msgs, "; "))}
	}
	for _, m := range msgs {
		fmt.Fprintln(g.streams.Err, "sitectl: warning: "+m)
	}
	return nil
}

// leftoverMessages says what drills left in the selected sites' swarms (nothing
// for a site whose records cannot be read).
func leftoverMessages(ctx context.Context, topo *sites.Topology, selected []*sites.Site) []string {
	var names []string
	for _, s := range selected {
		names = append(names, s.Name)
	}
	left, _ := live.Leftovers(ctx, topo, names)
	now := time.Now()
	var msgs []string
	for _, l := range left {
		msgs = append(msgs, l.Message(now))
	}
	return msgs
}

// drillWarnings reads the drill records of the selected sites in the background
// (plan reads them while it plans) and returns the function that prints, on
// stderr, what drills left there, once read: call it before anything else is
// printed; it prints once.
func (g *globals) drillWarnings(ctx context.Context, topo *sites.Topology, selected []*sites.Site) func() {
	read := make(chan []string, 1)
	go func() { read <- leftoverMessages(ctx, topo, selected) }()
	return sync.OnceFunc(func() {
		for _, m := range <-read {
			fmt.Fprintln(g.streams.Err, "sitectl: warning: "+m)
		}
	})
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
	f.DurationVar(&o.duration, "duration", 60*time.Second, "how long the fault lasts, from the moment it took effect")
	f.IntVar(&o.writes, "writes", 1000, "rows each site writes during the fault")
	f.DurationVar(&o.converge, "converge-timeout", 2*time.Minute, "how long to wait for convergence after the heal")
	f.DurationVar(&o.timeout, "timeout", 0, "abort (and heal) after this long (default: duration + converge-timeout + 2m)")
	f.StringVar(&o.report, "report", "", "also write the report as an HTML page with a timeline to this file")
	f.StringVar(&o.confirm, "confirm", "", "the environment name, required to drill production (--confirm production)")
	f.IntVar(&o.load, "load", 0, "requests/s each site's clients send through their own gateway during the drill; the report adds availability per phase (0: none)")
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
	if o.load < 0 {
		return fmt.Errorf("drill %s: --load is %d; want requests/s per site above 0, or 0 for none", kind, o.load)
	}
	touched, err := topo.Select(live.TouchedSites(topo, kind, o.site)...)
	if err != nil {
		return err
	}
	if err := g.drillLeftovers(ctx, topo, touched, true, "drill "+kind); err != nil {
		return err
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
	var load *drillLoad
	if o.load > 0 {
		if load, err = startDrillLoad(ctx, topo, o.load); err != nil {
			return err
		}
		d.OnEvent = load.hook(d.OnEvent)
	}
	rep := d.Run(ctx)
	if load != nil {
		rep.Availability = load.watch.Stop(load.entries)
		if !rep.Interrupted && !rep.HealFailed {
			// The writes made through the API, verified like the drill's own rows.
			rep.AddAPIWrites(live.VerifyAPIWrites(ctx, topo, load.watch.Writes(), o.converge))
		}
	}
	if o.report != "" {
		if err := writeHTMLFile(o.report, rep, drill.WriteHTML); err != nil {
			fmt.Fprintf(g.streams.Err, "sitectl: write %s: %v\n", o.report, err)
		}
	}
	if ok, err := g.printStructured(rep); ok {
		if err != nil {
			return err
		}
	} else {
		printDrillText(g, rep)
		printAvailability(g, rep.Availability)
	}
	if rep.Interrupted {
		// Said on stderr whatever the output mode: stdout may be JSON for a program.
		healed := "the faults were removed"
		if rep.HealFailed {
			healed = "HEAL FAILED, a fault is still in place: run `sitectl drill heal`"
		}
		fmt.Fprintf(g.streams.Err, "sitectl: drill %s interrupted (%s): %s; nothing was verified\n", kind, context.Cause(ctx), healed)
	}
	if !rep.Passed {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s", rep.Summary()), Silent: true}
	}
	return nil
}

// writeHTMLFile writes rep to path with write (a package's WriteHTML); a failed
// write is the error reported, not the close's.
func writeHTMLFile[R any](path string, rep R, write func(io.Writer, R) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f, rep); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func printDrillText(g *globals, r *drill.Report) {
	w := g.streams.Out
	fmt.Fprintln(w, r.Summary())
	if r.Window != nil {
		fmt.Fprintln(w, "  "+r.Window.String())
	}
	if r.RecordError != "" {
		fmt.Fprintln(w, "  fault record: "+r.RecordError)
	}
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
	if a := r.APIWrites; a != nil {
		for _, c := range a.Checks {
			mark := "✓"
			if !c.Passed {
				mark = "✗"
			}
			fmt.Fprintf(w, "  %s API writes %-10s %s\n", mark, c.Name, c.Detail)
		}
	}
	for _, o := range r.Observations {
		mark := "✓"
		if !o.OK {
			mark = "✗"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, o.What, o.Detail)
	}
	printDrillAlerts(w, r.Alerts)
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

// printDrillAlerts lists the alerts of the drill with their times after the cut
// and after the heal.
func printDrillAlerts(w io.Writer, a *drill.AlertReport) {
	switch {
	case a == nil:
		return
	case a.Note != "":
		fmt.Fprintln(w, "  alerts: not watched: "+a.Note)
		return
	}
	fmt.Fprintf(w, "  alerts at %s:\n", a.Receiver)
	if len(a.Alerts) == 0 {
		fmt.Fprintln(w, "    none")
	}
	for _, x := range a.Alerts {
		via := x.Via
		if x.InhibitedBy {
			via += ", inhibited"
			if x.HeldAfterCut != nil && x.Via == "receiver" {
				via += fmt.Sprintf(" in Alertmanager from cut+%.1fs", float64(*x.HeldAfterCut))
			}
		}
		fired, resolved := "fired ?", "not resolved"
		if x.FiredAfterCut != nil {
			fired = fmt.Sprintf("fired cut+%.1fs", float64(*x.FiredAfterCut))
		}
		if x.ResolvedAfterHeal != nil {
			resolved = fmt.Sprintf("resolved heal+%.1fs", float64(*x.ResolvedAfterHeal))
		}
		fmt.Fprintf(w, "    %s (%s): %s, %s\n", x.Name(), via, fired, resolved)
	}
	if a.Error != "" {
		fmt.Fprintln(w, "    ✗ "+a.Error)
	}
}
