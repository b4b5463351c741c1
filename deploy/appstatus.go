package deploy

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// AppStatus is one operator app declared at a site, as its services run there.
type AppStatus struct {
	Name string `json:"name"`
	// Services are the app's services found at the site (<app>_<service>).
	Services int    `json:"services"`
	Running  uint64 `json:"running"`
	Desired  uint64 `json:"desired"`
	Image    string `json:"image"`
	// Routes are the app's paths, with "(hub)" for those the hub serves.
	Routes []string `json:"routes,omitempty"`
	// State: running, degraded (a service runs fewer tasks than it wants), or not
	// deployed (no service yet: deploy creates it).
	State string `json:"state"`
}

// App states.
const (
	AppRunning     = "running"
	AppDegraded    = "degraded"
	AppNotDeployed = "not deployed"
)

// appStatus lists the apps topo declares at site, from the site's services.
func appStatus(topo *sites.Topology, site string, services []ServiceStatus) []AppStatus {
	var out []AppStatus
	for _, a := range topo.AppsAt(site) {
		as := AppStatus{Name: a.Name, Image: a.Sites[site].Image, State: AppNotDeployed}
		for _, r := range a.Routes {
			p := strings.Join(r.Hosts, ",") + r.Path
			if r.At == sites.RouteHub {
				p += " (hub)"
			}
			as.Routes = append(as.Routes, p)
		}
		for _, s := range services {
			if s.Stack != a.Name {
				continue
			}
			as.Services++
			as.Running += s.Running
			as.Desired += s.Desired
		}
		switch {
		case as.Services == 0:
		case as.Running < as.Desired:
			as.State = AppDegraded
		default:
			as.State = AppRunning
		}
		out = append(out, as)
	}
	return out
}

// appRows are the APP table's rows of one site.
func appRows(st SiteStatus) [][]string {
	var rows [][]string
	for _, a := range st.Apps {
		routes := "-"
		if len(a.Routes) > 0 {
			routes = strings.Join(a.Routes, " ")
		}
		rows = append(rows, []string{a.Name, a.State, fmt.Sprintf("%d/%d", a.Running, a.Desired), a.Image, routes})
	}
	return rows
}
