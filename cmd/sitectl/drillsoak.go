package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/live"
	"github.com/sitectl/sitectl/drill/soak"
	"github.com/sitectl/sitectl/traffic"
)

type soakOptions struct {
	duration, faultDuration, converge time.Duration
	seed                              uint64
	seedSet                           bool
	faults                            string
	load, writes                      int
	report, confirm                   string
}

func newDrillSoakCommand(g *globals) *cobra.Command {
	o := &soakOptions{}
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Random faults one at a time (partition, cloud-loss, node-loss, db-down, api-kill), each healed and verified; a final full verify",
		Long: `soak draws a random schedule of faults from a seed (printed first, in every output
mode, so --seed replays the same schedule: same seed, --faults and sites give the same
faults in the same order) and runs them one at a time as drills: each fault injected,
held --fault-duration while every site writes its rows, always removed, converged and
verified before the next. It stops drawing once --duration has passed, at the first
failing fault, or on Ctrl-C (which heals the current fault and stops the load); then
it verifies again, from a fresh read, every row every fault wrote and every write made
through the API. With --load R, clients at every site running Kong call their own
entry point R times a second for the whole soak; each fault's report adds their
availability per phase, and their acknowledged writes are verified like the drill's
rows. Passes only with every fault healed and verified and lost = duplicated = 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.seedSet = cmd.Flags().Changed("seed")
			return runDrillSoak(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.duration, "duration", 30*time.Minute, "stop drawing faults after this long (the fault then running ends first)")
	f.Uint64Var(&o.seed, "seed", 0, "the schedule's seed, to replay a soak (default: a random one, printed)")
	f.StringVar(&o.faults, "faults", "", "comma-separated faults to draw from (default all: "+strings.Join(soak.Kinds, ",")+")")
	f.IntVar(&o.load, "load", 0, "requests/s each site's clients send through their own gateway for the whole soak (0: none)")
	f.DurationVar(&o.faultDuration, "fault-duration", 30*time.Second, "how long each fault lasts, from the moment it took effect")
	f.IntVar(&o.writes, "writes", 100, "rows each site writes during each fault")
	f.DurationVar(&o.converge, "converge-timeout", 2*time.Minute, "how long to wait for convergence after each heal")
	f.StringVar(&o.report, "report", "", "also write the report as an HTML page to this file")
	f.StringVar(&o.confirm, "confirm", "", "the environment name, required to soak production (--confirm production)")
	return cmd
}

func runDrillSoak(ctx context.Context, g *globals, o *soakOptions) error {
	topo, err := g.loadTopology()
	if err != nil {
		return err
	}
	if topo.Env == "production" && o.confirm != "production" {
		return &ExitError{Code: 1, Err: fmt.Errorf("drill soak in production cuts real links, stops real services and writes real rows: add --confirm production to go ahead")}
	}
	switch {
	case o.duration <= 0 || o.faultDuration <= 0:
		return fmt.Errorf("drill soak: --duration and --fault-duration must be above 0 (such as --duration 30m --fault-duration 30s)")
	case o.writes <= 0:
		return fmt.Errorf("drill soak: --writes is %d; want rows per site per fault above 0", o.writes)
	case o.load < 0:
		return fmt.Errorf("drill soak: --load is %d; want requests/s per site above 0, or 0 for none", o.load)
	}
	kinds, err := soak.ParseFaults(o.faults)
	if err != nil {
		return err
	}
	if !o.seedSet {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.seed = binary.BigEndian.Uint64(b[:]) >> 1 // fits any JSON reader's integers
	}
	// A fault lasts at least --fault-duration: more steps than this cannot run.
	n := min(int(o.duration/o.faultDuration)+1, 10000)
	planned, err := soak.Schedule(o.seed, kinds, live.SoakTargets(topo), n)
	if err != nil {
		return err
	}
	if err := g.drillLeftovers(ctx, topo, topo.Sites, true, "drill soak"); err != nil {
		return err
	}
	replay := fmt.Sprintf("--seed %d --faults %s --duration %s --fault-duration %s", o.seed, strings.Join(kinds, ","), o.duration, o.faultDuration)
	// The seed first, in every output mode (stdout may be JSON for a program).
	seedLine := fmt.Sprintf("soak seed %d (replay: sitectl drill soak %s)", o.seed, replay)
	if g.output == "" || g.output == "text" {
		fmt.Fprintln(g.streams.Out, seedLine)
	} else {
		fmt.Fprintln(g.streams.Err, seedLine)
	}
	r := &live.SoakRunner{Topo: topo, Progress: g.progress(),
		Settings: drill.Settings{Duration: o.faultDuration, Writes: o.writes, Converge: o.converge}}
	if o.load > 0 {
		if r.Entries, err = loadEntries(ctx, topo); err != nil {
			return err
		}
		// The clients stop when the soak returns (after the heal Ctrl-C starts).
		r.Watch = traffic.StartWatch(context.WithoutCancel(ctx), r.Entries, o.load)
	}
	prog := g.progress()
	rep := soak.Run(ctx, planned, r, soak.Options{Seed: o.seed, Replay: replay, Duration: o.duration, Faults: kinds, Load: o.load,
		OnStep: func(s soak.Step, res *soak.StepResult) {
			switch {
			case res == nil:
				prog.Infof("soak: fault %s", s)
			case res.Passed:
				prog.Infof("soak: fault %s healed and verified: %s", s, res.Summary)
			default:
				prog.Warnf("soak: fault %s: %s", s, res.Summary)
			}
		}})
	if r.Watch != nil {
		r.Watch.Stop(r.Entries)
	}
	if o.report != "" {
		if err := writeHTMLFile(o.report, rep, soak.WriteHTML); err != nil {
			fmt.Fprintf(g.streams.Err, "sitectl: write %s: %v\n", o.report, err)
		}
	}
	if ok, err := g.printStructured(rep); ok {
		if err != nil {
			return err
		}
	} else {
		printSoakText(g, rep)
	}
	if rep.Interrupted {
		fmt.Fprintf(g.streams.Err, "sitectl: drill soak interrupted (%s): the current fault was removed, the load stopped; replay with --seed %d\n", context.Cause(ctx), o.seed)
	}
	if !rep.Passed {
		return &ExitError{Code: 1, Err: fmt.Errorf("%s", rep.Summary()), Silent: true}
	}
	return nil
}

func printSoakText(g *globals, r *soak.Report) {
	w := g.streams.Out
	fmt.Fprintln(w, r.Summary())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FAULT\tIN EFFECT\tHELD\tRESULT\tROWS ACKED/LOST/DUP\tAPI WRITES ACKED/LOST/DUP")
	for _, s := range r.Steps {
		held, at := "-", "-"
		if s.Held != nil {
			held = fmt.Sprintf("%.1fs", float64(*s.Held))
		}
		if !s.InEffect.IsZero() {
			at = s.InEffect.UTC().Format("15:04:05")
		}
		result := "passed"
		if !s.Passed {
			result = "FAILED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d/%d/%d\t%d/%d/%d\n", s.Step, at, held, result, s.Acked, s.Lost, s.Duplicated, s.APIAcked, s.APILost, s.APIDuplicated)
	}
	_ = tw.Flush()
	for _, s := range r.Steps {
		for _, f := range s.Failed {
			fmt.Fprintf(w, "  ✗ %s: %s\n", s.Step, f)
		}
	}
	var av []traffic.Availability
	for _, s := range r.Steps {
		av = append(av, s.Availability...)
	}
	if len(av) > 0 {
		fmt.Fprintln(w, "Availability through each site's own gateway per fault and phase (--load):")
		printAvailabilityTable(g, av)
	}
	if v := r.Final; v != nil {
		fmt.Fprintln(w, "Final verification of every row written during the soak:")
		for _, c := range v.Checks {
			mark := "✓"
			if !c.Passed {
				mark = "✗"
			}
			fmt.Fprintf(w, "  %s %-22s %s\n", mark, c.Name, c.Detail)
		}
	}
}
