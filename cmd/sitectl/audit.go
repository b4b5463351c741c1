package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/audit"
)

func newAuditCommand(g *globals) *cobra.Command {
	var sf siteFlags
	var opts audit.Options
	cmd := &cobra.Command{
		Use:   "audit [--site S | --all]",
		Short: "Probe each site from outside like an attacker: only Kong's edge ports may answer (exit 1 on a high finding)",
		Long: `Connects over TCP to each site's gateway WAN address and to its nodes' LAN
addresses routed through the gateway, on SSH, Docker, swarm and every stack's ports
(audit.Ports) and Kong's published proxy ports. Only the proxy ports on the edge nodes
may answer: anything else that answers is high, a refused connection (reachable, not
dropped) medium, an address that cannot be probed from here high and "unknown" —
never a pass. In the lab the probes run from the WAN namespace, with a route to each
site's LAN via its gateway added for the audit and removed after it. Exit 1 when a
high finding stands.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			selected, err := sf.selectSites(topo)
			if err != nil {
				return err
			}
			rep, err := audit.Run(cmd.Context(), topo, selected, opts)
			if err != nil {
				return err
			}
			ok, err := g.printStructured(rep)
			if !ok {
				tw := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEVERITY\tSITE\tOBJECT\tSTATE\tFINDING\tFIX")
				for _, f := range rep.Findings {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity, f.Site, f.Object, orDash(f.State), f.What, orDash(f.Fix))
				}
				err = tw.Flush()
				fmt.Fprintf(g.streams.Out, "%d probes from %s in %s; %d high finding(s)\n", rep.Probes, rep.From, rep.Took.Round(time.Millisecond), rep.Highs())
			}
			if err != nil {
				return err
			}
			if n := rep.Highs(); n > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("audit: %d high finding(s)", n), Silent: ok}
			}
			return nil
		},
	}
	sf.add(cmd, "audit", false)
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 700*time.Millisecond, "how long one probe waits for an answer")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 64, "probes at once")
	cmd.Flags().BoolVar(&opts.ExposureOnly, "exposure-only", false, "only probe; do not read the configuration, services and databases")
	return cmd
}
