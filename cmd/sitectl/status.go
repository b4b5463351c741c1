package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/internal/text"
)

func newStatusCommand(g *globals) *cobra.Command {
	var sf siteFlags
	var af alertFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each site's nodes, services (running/desired, image, last update) and networks",
		Long: `Reads each selected site's swarm: nodes, services (running/desired, image, last
update) and networks. The last line says whether every site is well. Exit code 1 when
a site could not be read, its swarm is not active, a node is not ready, or a service
sitectl manages runs fewer tasks than it wants or was rolled back or paused.

Each site's alerts come from the hub's Alertmanager (v2 API, at the hub's monitor
node, port 9093; --alertmanager to reach it elsewhere): firing, inhibited or
silenced, shown and not judged. Exit code 1 when Alertmanager cannot be reached
(--no-alerts skips it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, selected, err := g.loadSelected(&sf)
			if err != nil {
				return err
			}
			_ = g.drillLeftovers(cmd.Context(), topo, selected, false, "status")
			all := deploy.Status(cmd.Context(), topo, selected, deploy.Options{Environ: g.environ})
			alertProblem := af.fill(cmd.Context(), topo, all)
			ok, err := g.printStructured(all)
			if !ok {
				err = deploy.RenderStatus(g.streams.Out, all, time.Now())
			}
			if err != nil {
				return err
			}
			var problems []string
			for _, st := range all {
				problems = append(problems, siteProblems(st)...)
			}
			if alertProblem != "" {
				problems = append(problems, alertProblem)
			}
			verdict := statusVerdict(all, problems)
			if ok { // stdout holds the document; the verdict goes to stderr
				fmt.Fprintln(g.streams.Err, verdict)
			} else {
				fmt.Fprintln(g.streams.Out, verdict)
			}
			if len(problems) > 0 {
				return &ExitError{Code: 1, Silent: true}
			}
			return nil
		},
	}
	sf.add(cmd, "show", false)
	af.add(cmd)
	return cmd
}

// siteProblems are what make `sitectl status` fail for one site: it could not be
// read, its swarm is not active, a node is not ready, or a sitectl service runs
// fewer tasks than it wants or was rolled back or paused. Services sitectl does not
// manage are shown, never judged.
func siteProblems(st deploy.SiteStatus) []string {
	if st.Error != "" {
		return []string{st.Site + " could not be read"}
	}
	if st.Swarm != "active" {
		return []string{fmt.Sprintf("%s: swarm is %s, not active (run sitectl deploy --site %s)", st.Site, text.OrDash(st.Swarm), st.Site)}
	}
	var out []string
	for _, n := range st.Nodes {
		if n.State != "ready" {
			out = append(out, fmt.Sprintf("%s: node %s is %s", st.Site, n.Hostname, n.State))
		}
	}
	for _, x := range st.Services {
		if !x.Managed {
			continue
		}
		switch {
		case x.Running < x.Desired:
			out = append(out, fmt.Sprintf("%s: service %s runs %d/%d", st.Site, x.Name, x.Running, x.Desired))
		case strings.HasPrefix(x.UpdateState, "rollback") || strings.HasSuffix(x.UpdateState, "paused"):
			out = append(out, fmt.Sprintf("%s: service %s update %s", st.Site, x.Name, x.UpdateState))
		}
	}
	return out
}

// statusVerdict is the last line of `sitectl status`.
func statusVerdict(all []deploy.SiteStatus, problems []string) string {
	if len(problems) == 0 {
		names := make([]string, len(all))
		for i, st := range all {
			names[i] = st.Site
		}
		return fmt.Sprintf("✓ %s: every node ready, every sitectl service running", strings.Join(names, ", "))
	}
	return fmt.Sprintf("✗ %d problem(s): %s", len(problems), strings.Join(problems, "; "))
}
