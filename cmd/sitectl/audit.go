package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/audit"
	"github.com/sitectl/sitectl/internal/text"
)

func newAuditCommand(g *globals) *cobra.Command {
	var sf siteFlags
	var opts audit.Options
	cmd := &cobra.Command{
		Use:   "audit [--site S | --all]",
		Short: "Probe each site from outside like an attacker and read what probes cannot see (exit 1 on a high finding)",
		Long: `Probes each site's gateway WAN address and its nodes' LAN addresses routed through
the gateway: TCP on SSH, Docker, swarm and every stack's ports (audit.Ports) and Kong's
proxy ports, UDP on DNS, NTP, SNMP, IKE, VXLAN, swarm gossip and WireGuard
(audit.UDPPorts). Only Kong's proxy ports on the edge nodes may answer: anything else
that answers is high (IKE answering a host that is no peer: medium), a refused
connection (reachable, not dropped) medium. In the lab the probes run from the WAN
namespace, with a route to each site's LAN via its gateway added for the audit and
removed after it.

Meanwhile it reads what probing cannot see: PostgreSQL's pg_hba (no trust,
scram-sha-256 only), the application's role (its own, no superuser), subscription
passwords in subconninfo; the deployed services and configs (no secret values, Kong's
admin API unpublished, Elasticsearch security on outside the lab, MongoDB with its
keyfile); the Docker API on 2375; Kong's TLS verification of the hub's /admin; the
tunnel certificates' expiry; overlay encryption off only with a stated reason (an
exception). An address, engine or database it cannot reach is "unknown" and high,
never a pass. Exit 1 when a high finding stands.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, selected, err := g.loadSelected(&sf)
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
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Severity, f.Site, f.Object, text.OrDash(f.State), f.What, text.OrDash(f.Fix))
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
