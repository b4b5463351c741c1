package live

import (
	"context"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts"
)

// AlertPath reads the alerting path of the hub: its Alertmanager's API and the
// recording receiver it posts to (the lab's).
type AlertPath struct {
	Alertmanager alerts.Client
	Receiver     alerts.Receiver
}

// Received lists every alert of every notification the receiver got.
func (a AlertPath) Received(ctx context.Context) ([]drill.Notified, error) {
	ns, err := a.Receiver.Received(ctx)
	if err != nil {
		return nil, err
	}
	var out []drill.Notified
	for _, n := range ns {
		for _, x := range n.Alerts {
			out = append(out, drill.Notified{At: n.At, Name: x.Labels["alertname"], Site: x.Labels["site"], Status: x.Status, Labels: x.Labels})
		}
	}
	return out, nil
}

// Held lists the alerts Alertmanager holds.
func (a AlertPath) Held(ctx context.Context) ([]drill.Held, error) {
	as, err := a.Alertmanager.Alerts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]drill.Held, 0, len(as))
	for _, x := range as {
		out = append(out, drill.Held{Name: x.Name, Site: x.Site, State: x.State, InhibitedBy: x.InhibitedBy, Labels: x.Labels})
	}
	return out, nil
}

// Alerting says how a drill cutting links watches the alerting path: each cut hub
// link must raise TunnelDown for its spoke. Alerts are watched when the hub runs the
// monitoring stack, its Alertmanager answers and the environment has a receiver the
// drill can read (the lab's); otherwise Note says why not.
func Alerting(ctx context.Context, topo *sites.Topology, links []sites.Link) drill.Alerting {
	hub := topo.HubSite()
	if hub == nil {
		return drill.Alerting{Note: "the topology has no hub, so no Alertmanager"}
	}
	if !hub.HasStack(monitoring.Name) {
		return drill.Alerting{Note: fmt.Sprintf("the hub %s does not list the monitoring stack (stacks), so nothing alerts", hub.Name)}
	}
	am := alerts.Client{URL: monitoring.AlertmanagerURL(topo), HTTP: hub.Reach.HTTPClient(5 * time.Second)}
	if _, err := am.Alerts(ctx); err != nil {
		return drill.Alerting{Note: fmt.Sprintf("the monitoring stack is not deployed at %s (%v); deploy it (`sitectl deploy --site %s`) to have the drill check its alerts",
			hub.Name, err, hub.Name)}
	}
	if hub.Lab.AlertReceiver == "" {
		return drill.Alerting{Note: fmt.Sprintf("environment %s has no receiver the drill can read (only the lab's records what it gets); see Alertmanager at %s", topo.Env, am.URL)}
	}
	a := drill.Alerting{
		Reader:   AlertPath{Alertmanager: am, Receiver: alerts.Receiver{URL: hub.Lab.AlertReceiver, HTTP: hub.Reach.HTTPClient(5 * time.Second)}},
		Receiver: "the lab's receiver " + hub.Lab.AlertReceiver,
	}
	a.Detect, a.Resolve = Bounds(topo)
	for _, l := range links {
		if l.Has(topo.Hub) && !l.Direct {
			a.Expect = append(a.Expect, drill.ExpectedAlert{Name: monitoring.AlertTunnelDown, Site: l.Other(topo.Hub)})
		}
	}
	return a
}

// Bounds are the alerting path's worst cases from the hub's settings. Detection: the
// last good scrape up to one interval before the cut, the failing scrape's timeout,
// an evaluation to go pending, the rule's for:, an evaluation to fire, Alertmanager's
// group_wait. Resolution: a scrape, an evaluation and a group_interval. Each with 2 s
// for the posts and the clocks.
func Bounds(topo *sites.Topology) (detect, resolve time.Duration) {
	hub := topo.HubSite()
	s, err := monitoring.ReadSettings(topo, hub)
	if err != nil {
		return 0, 0
	}
	d := func(v string) time.Duration { x, _ := time.ParseDuration(v); return x }
	scrape, eval := d(s.ScrapeInterval), d(s.EvaluationInterval)
	timeout := min(scrape, 10*time.Second) // as prometheus.yml renders scrape_timeout
	wait, interval := d(monitoring.DefaultGroupWait), d(monitoring.DefaultGroupInterval)
	if hub.Alerting.GroupWait > 0 {
		wait = hub.Alerting.GroupWait.D()
	}
	if hub.Alerting.GroupInterval > 0 {
		interval = hub.Alerting.GroupInterval.D()
	}
	const slack = 2 * time.Second
	detect = scrape + timeout + 2*eval + d(s.TunnelDownFor) + wait + slack
	resolve = scrape + eval + interval + slack
	return detect, resolve
}
