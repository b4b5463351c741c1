package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/text"
	"github.com/sitectl/sitectl/traffic"
)

func newLoadCommand(g *globals) *cobra.Command {
	var sf siteFlags
	var rate int
	var duration time.Duration
	var mix, report string
	cmd := &cobra.Command{
		Use:   "load [--site S | --all] --rate R --duration D [--mix read:write] [--report FILE.html]",
		Short: "Send HTTP load through each site's gateway and report throughput, latency and errors per site",
		Long: `Sends requests to each selected site's entry point (its Kong nodes' HTTPS proxy
port; in the lab from the site's gateway namespace), at --rate requests per second per
site for --duration: reads (GET /api/rows?limit=1) and writes (POST /api/rows) in the
--mix proportion. Load goes only to the configured entry points. Every entry point is
checked first: an unreachable one is an error and no load is sent. Progress every
second on stderr; then per site: requests, throughput (successful requests/s),
success rate, latency p50/p90/p99/max, errors by kind, and which site's API served the
successful answers (failover shows here). With --report, also an HTML page (the
drill report's look, self-contained): per site its latency over time (p50 and p99
per second) and the same figures. The load generator is vegeta's library.
Interrupting stops the clients.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := traffic.ParseMix(mix)
			if err != nil {
				return err
			}
			opts := traffic.Options{Rate: rate, Duration: duration, Mix: m}
			if err := opts.Validate(); err != nil {
				return err
			}
			topo, selected, err := g.loadSelected(&sf)
			if err != nil {
				return err
			}
			var entries []traffic.Entry
			for _, s := range selected {
				e, err := traffic.EntryOf(topo, s)
				if err != nil {
					return err
				}
				if err := traffic.Reachable(cmd.Context(), e); err != nil {
					return err
				}
				entries = append(entries, e)
			}
			if !g.quiet {
				opts.Progress = func(rs []traffic.Result) {
					var parts []string
					for _, r := range rs {
						parts = append(parts, fmt.Sprintf("%s %d sent, %.1f%% ok, p99 %s", r.Site, r.Requests, 100*r.Success, r.P99.Round(time.Millisecond)))
					}
					fmt.Fprintln(g.streams.Err, "load: "+strings.Join(parts, "; "))
				}
			}
			started := time.Now()
			res, err := traffic.Run(cmd.Context(), entries, opts)
			if err != nil {
				return fmt.Errorf("load interrupted (clients stopped): %w", err)
			}
			rep := &traffic.Report{Rate: rate, Duration: duration, Mix: mix, Started: started, Sites: res}
			if err := printLoad(g, rep); err != nil {
				return err
			}
			if report != "" {
				if err := writeHTMLFile(report, rep, traffic.WriteHTML); err != nil {
					return fmt.Errorf("--report %s: %w (the figures above are complete)", report, err)
				}
			}
			return nil
		},
	}
	sf.add(cmd, "load", true)
	cmd.Flags().IntVar(&rate, "rate", 0, "requests per second per site (required)")
	cmd.Flags().DurationVar(&duration, "duration", 0, "how long to send load, such as 30s (required)")
	cmd.Flags().StringVar(&mix, "mix", "9:1", "reads:writes, such as 9:1 or 1:0")
	cmd.Flags().StringVar(&report, "report", "", "also write the figures as an HTML page with each site's latency over time to this file")
	markRequired(cmd, "rate", "--rate")
	markRequired(cmd, "duration", "--duration")
	return cmd
}

// printLoad prints the run's figures (-o json/yaml, or a table).
func printLoad(g *globals, rep *traffic.Report) error {
	ok, err := g.printStructured(rep)
	if ok || err != nil {
		return err
	}
	tw := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tREQUESTS\tTHROUGHPUT/S\tSUCCESS\tP50\tP90\tP99\tMAX\tERRORS\tSERVED BY")
	for _, r := range rep.Sites {
		var errs, served []string
		for _, k := range r.ErrKinds() {
			errs = append(errs, fmt.Sprintf("%s×%d", k, r.Errors[k]))
		}
		for s, n := range r.ServedBy {
			served = append(served, fmt.Sprintf("%s×%d", s, n))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f%%\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Site, r.Requests, r.Throughput, 100*r.Success,
			ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), text.OrDash(strings.Join(errs, ", ")), text.OrDash(strings.Join(served, ", ")))
	}
	return tw.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
