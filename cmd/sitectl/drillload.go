package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/internal/text"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/traffic"
)

// drillLoad is `drill --load R`: clients at every site running Kong keep calling
// their own entry point through the drill; the report adds what they saw per
// phase (before, during and after the fault), drill.Report.Availability.
type drillLoad struct {
	watch   *traffic.Watch
	entries []traffic.Entry
}

func startDrillLoad(ctx context.Context, topo *sites.Topology, rate int) (*drillLoad, error) {
	entries, err := loadEntries(ctx, topo)
	if err != nil {
		return nil, err
	}
	// The figures start from gateways that serve their own API (not a previous
	// fault's failover still failing back, nor an API just deployed). Answers 2 s
	// apart: 3 in a row span two of Kong's probe intervals, so the peers' Kong
	// nodes have seen this API ready too (healthy.successes 2).
	if err := traffic.WaitOwn(ctx, entries, 2*time.Minute, 2*time.Second); err != nil {
		return nil, fmt.Errorf("--load: %w", err)
	}
	// The clients outlive ctx's cancellation by SIGINT only as long as the drill's
	// heal: they stop when the drill returns.
	return &drillLoad{watch: traffic.StartWatch(context.WithoutCancel(ctx), entries, rate), entries: entries}, nil
}

// loadEntries are the entry points of every site running Kong, each checked
// reachable.
func loadEntries(ctx context.Context, topo *sites.Topology) ([]traffic.Entry, error) {
	var entries []traffic.Entry
	for _, s := range topo.Sites {
		if !s.HasStack(kong.Name) {
			continue
		}
		e, err := traffic.EntryOf(topo, s)
		if err != nil {
			return nil, err
		}
		if err := traffic.Reachable(ctx, e); err != nil {
			return nil, fmt.Errorf("--load: %w", err)
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("--load: no site runs kong, so no site has an entry point to load")
	}
	return entries, nil
}

// hook moves the clients to the next phase on the drill's fault events, then calls next.
func (l *drillLoad) hook(next func(drill.Event)) func(drill.Event) {
	return func(e drill.Event) {
		switch e.Kind {
		case drill.EvCut, drill.EvDown:
			l.watch.Phase("during")
		case drill.EvHeal, drill.EvRestore:
			l.watch.Phase("after")
		}
		if next != nil {
			next(e)
		}
	}
}

func printAvailability(g *globals, av []traffic.Availability) {
	if len(av) == 0 {
		return
	}
	fmt.Fprintln(g.streams.Out, "Availability through each site's own gateway (--load):")
	printAvailabilityTable(g, av)
}

func printAvailabilityTable(g *globals, av []traffic.Availability) {
	tw := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SITE\tPHASE\tOK/REQUESTS\tSUCCESS\tLONGEST GAP\tSERVED BY\tERRORS\tFAILOVER")
	for _, a := range av {
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%.2f%%\t%s\t%v\t%s\t%s\n", a.Site, a.Phase, a.OK, a.Requests, 100*a.Success, a.LongestGap.Round(time.Millisecond), a.ServedBy,
			text.OrDash(a.ErrorText()), text.OrDash(a.Failover.String()))
	}
	_ = tw.Flush()
}
