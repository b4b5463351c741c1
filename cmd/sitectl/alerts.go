package main

import (
	"context"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts"
)

// alertFlags are status's flags for the hub's Alertmanager.
type alertFlags struct {
	url  string
	skip bool
}

func (f *alertFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "alertmanager", "", "Alertmanager's URL (default: the hub's monitor node, port 9093)")
	cmd.Flags().BoolVar(&f.skip, "no-alerts", false, "do not read the hub's Alertmanager")
}

// fill reads the hub's Alertmanager into each site's status and returns the
// problem to report when it cannot be read ("" when read, skipped, or when the
// hub runs no monitoring stack and no --alertmanager is given).
func (f *alertFlags) fill(ctx context.Context, topo *sites.Topology, all []deploy.SiteStatus) string {
	hub := topo.HubSite()
	if f.skip || (f.url == "" && (hub == nil || !hub.HasStack(monitoring.Name))) {
		return ""
	}
	c := alerts.Client{URL: f.url, HTTP: &http.Client{Timeout: 5 * time.Second}}
	if c.URL == "" {
		c.URL = monitoring.AlertmanagerURL(topo)
		// The hub's LAN is reached with its Reach, as the databases are (from
		// its gateway's namespace in the lab).
		c.HTTP = hub.Reach.HTTPClient(5 * time.Second)
	}
	got, err := c.Alerts(ctx)
	if err != nil {
		for i := range all {
			all[i].AlertsError = err.Error()
		}
		return err.Error() + " (is the monitoring stack deployed at " + topo.Hub + "? --no-alerts skips it)"
	}
	for i := range all {
		for _, a := range got {
			if a.Site == all[i].Site || (a.Site == "" && all[i].Site == topo.Hub) {
				all[i].Alerts = append(all[i].Alerts, a)
			}
		}
	}
	return ""
}
