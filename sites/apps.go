package sites

// App is one operator app (a folder under the apps directory: a compose file with
// an x-sitectl extension), resolved for one environment. Package apps reads and
// validates it; stacks renders it like a stack; kong and monitoring wire it.
type App struct {
	Name string `json:"name"`
	// File is the app's compose file as messages name it ("apps/notes/compose.yaml").
	File string `json:"file"`
	// Compose is the compose file as written (the user's stack file).
	Compose []byte `json:"-"`
	// Service is the compose service that is the app's entry point (routes,
	// replicas, image, metrics apply to it).
	Service string `json:"service"`
	// Port is the container port Kong sends the app's routes to.
	Port int `json:"port,omitempty"`
	// Liveness and Readiness are HTTP paths; Kong health-checks Readiness.
	Liveness  string `json:"liveness,omitempty"`
	Readiness string `json:"readiness,omitempty"`
	// MetricsPort is the container port Prometheus scrapes (0: none), published at
	// MetricsPublished on the site's nodes; MetricsPath the path.
	MetricsPort      int        `json:"metrics_port,omitempty"`
	MetricsPublished int        `json:"metrics_published,omitempty"`
	MetricsPath      string     `json:"metrics_path,omitempty"`
	Routes           []AppRoute `json:"routes,omitempty"`
	// Sites maps each site that runs the app to its settings there.
	Sites map[string]AppSite `json:"sites"`
}

// AppSite is an app's settings at one site (after every layer).
type AppSite struct {
	Replicas int    `json:"replicas"`
	Image    string `json:"image,omitempty"`
}

// AppRoute is one route of an app: a path prefix (and optional hosts), served at
// every site that runs the app (At "local") or at the hub only (At "hub": spokes'
// Kong forwards it to the hub's, like /admin).
type AppRoute struct {
	Path  string   `json:"path"`
	Hosts []string `json:"hosts,omitempty"`
	At    string   `json:"at"`
}

// Route placements.
const (
	RouteLocal = "local"
	RouteHub   = "hub"
)

// AppsAt lists the apps site runs, in name order.
func (t *Topology) AppsAt(site string) []*App {
	var out []*App
	for _, a := range t.Apps {
		if _, ok := a.Sites[site]; ok {
			out = append(out, a)
		}
	}
	return out
}

// App returns the named app, or nil.
func (t *Topology) App(name string) *App {
	for _, a := range t.Apps {
		if a.Name == name {
			return a
		}
	}
	return nil
}
