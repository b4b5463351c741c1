package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/deploy"
)

func newStatusCommand(g *globals) *cobra.Command {
	var sf siteFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each site's nodes, services (running/desired, image, last update) and networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			selected, err := sf.selectSites(topo, false)
			if err != nil {
				return err
			}
			_ = g.drillLeftovers(cmd.Context(), topo, selected, false, "status")
			all := deploy.Status(cmd.Context(), topo, selected, deploy.Options{Environ: g.environ})
			ok, err := g.printStructured(all)
			if !ok {
				err = deploy.RenderStatus(g.streams.Out, all, time.Now())
			}
			if err != nil {
				return err
			}
			var failed []string
			for _, st := range all {
				if st.Error != "" {
					failed = append(failed, st.Site)
				}
			}
			if len(failed) > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("could not read %s", strings.Join(failed, ", ")), Silent: ok}
			}
			return nil
		},
	}
	sf.add(cmd, "show (default: all)")
	return cmd
}
