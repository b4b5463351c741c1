package sites

import "strings"

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
	// Database is the site database the app uses (x-sitectl.database); nil: none.
	Database *AppDatabase `json:"database,omitempty"`
	// Sites maps each site that runs the app to its settings there.
	Sites map[string]AppSite `json:"sites"`
	// Resources, Update and Rollback are x-sitectl's resources, update and rollback
	// policy for the entry service (nil: the compose file's own, if any).
	Resources *AppResources `json:"resources,omitempty"`
	Update    *AppPolicy    `json:"update,omitempty"`
	Rollback  *AppPolicy    `json:"rollback,omitempty"`
	// EndpointMode is the entry service's deploy.endpoint_mode in its compose file
	// ("": the site's deploy.endpoint_mode, see EndpointModeAt).
	EndpointMode string `json:"endpoint_mode,omitempty"`
	// After names the apps this one starts after (x-sitectl.after): at a site
	// running both, deploy applies this app's group once theirs have converged.
	After []string `json:"after,omitempty"`
	// Placement is PlacementAppNodes when the entry service runs on the site's app
	// nodes (node.labels.role == app), or on a site without any on the site's own
	// nodes; "": the compose file's own placement.
	Placement string `json:"placement,omitempty"`
	// Mongo is whether sitectl sets MONGO_URI on the entry service: every member of
	// the MongoDB replica set across the sites, the site's own first (x-sitectl.mongo).
	Mongo bool `json:"mongo,omitempty"`
	// RateLimit is the requests per minute per client address Kong lets through on
	// the app's routes (x-sitectl.rate_limit, with x-sitectl.env.<env>.rate_limit;
	// 0: no limit) at a site that does not run the app (a spoke forwarding its hub
	// routes); a site running it has its own (AppSite.RateLimit, RateLimitAt).
	RateLimit int `json:"rate_limit,omitempty"`
}

// RateLimitAt is the app's rate limit on its routes at site: the site's own when it
// runs the app, else the app's (0: no limit).
func (a *App) RateLimitAt(site string) int {
	if as, ok := a.Sites[site]; ok {
		return as.RateLimit
	}
	return a.RateLimit
}

// AppMongoEnv is the variable holding the MongoDB URI sitectl sets for an app
// with x-sitectl.mongo (no credentials in it).
const AppMongoEnv = "MONGO_URI"

// PlacementAppNodes places an app's entry service on the site's app nodes.
const PlacementAppNodes = "app-nodes"

// HasFailover says whether one of the app's locally served routes fails over to
// peer sites.
func (a *App) HasFailover() bool {
	for _, r := range a.Routes {
		if r.Failover == FailoverPeers && r.At == RouteLocal {
			return true
		}
	}
	return false
}

// AppSite is an app's settings at one site (after every layer).
type AppSite struct {
	Replicas int    `json:"replicas"`
	Image    string `json:"image,omitempty"`
	// Canary is the site's weighted canary of the app (nil: none).
	Canary *AppCanary `json:"canary,omitempty"`
	// RateLimit is the requests per minute per client address Kong lets through on
	// the app's routes at the site (0: no limit): x-sitectl.rate_limit <
	// x-sitectl.site.<site> < x-sitectl.env.<env> < values.<app>.rate_limit.
	RateLimit int `json:"rate_limit,omitempty"`
	// Healthcheck are the entry service's healthcheck keys set for the site and
	// environment (x-sitectl.site.<site>.healthcheck < x-sitectl.env.<env> <
	// values.<app>.healthcheck), written over the compose file's, key by key: test,
	// interval, timeout, retries, start_period, disable. Nil: the compose file's.
	Healthcheck map[string]any `json:"healthcheck,omitempty"`
}

// AppResources are an app's CPU and memory limits and reservations, as compose
// writes them (cpus "0.5", memory "256M"); "" leaves one unset.
type AppResources struct {
	LimitCPUs         string `json:"limit_cpus,omitempty"`
	LimitMemory       string `json:"limit_memory,omitempty"`
	ReservationCPUs   string `json:"reservation_cpus,omitempty"`
	ReservationMemory string `json:"reservation_memory,omitempty"`
}

// AppPolicy is an update or rollback policy (compose's update_config and
// rollback_config); nil fields keep the compose file's.
type AppPolicy struct {
	Parallelism   *int   `json:"parallelism,omitempty"`
	Delay         string `json:"delay,omitempty"`
	Monitor       string `json:"monitor,omitempty"`
	Order         string `json:"order,omitempty"`
	FailureAction string `json:"failure_action,omitempty"`
}

// AppCanary is a second service of the app, <service>-canary, running another
// image and receiving Weight percent of the app's locally served routes (Kong
// upstream weights).
type AppCanary struct {
	Image    string `json:"image"`
	Replicas int    `json:"replicas"`
	Weight   int    `json:"weight"`
	// Environment is set on the canary service only (x-sitectl.canary.environment).
	Environment map[string]string `json:"environment,omitempty"`
}

// EndpointModeAt is the entry service's endpoint mode at site: its compose file's
// deploy.endpoint_mode, else the site's deploy.endpoint_mode, which sitectl writes
// into it (as into the built-in stacks' services).
func (a *App) EndpointModeAt(s *Site) string {
	if a.EndpointMode != "" {
		return a.EndpointMode
	}
	if s.Deploy.EndpointMode == "" {
		return "vip"
	}
	return s.Deploy.EndpointMode
}

// CanaryService is the name of an app's canary service in its stack.
func (a *App) CanaryService() string { return a.Service + "-canary" }

// AppDatabase is the database an app uses: at each site that runs the app, the
// site's PostgreSQL (its postgres stack), reached over the site's data network, as
// a role of the app's own that sitectl creates and keeps there (LOGIN, no
// superuser, the rows of the tables of schema public; never sitectl's
// administrative role). The password comes from a site secret, by name: never a
// value.
type AppDatabase struct {
	// Engine is the database: "postgres" (the site's postgres stack).
	Engine string `json:"engine"`
	// User is the app's own role (AppRoleName by default).
	User string `json:"user"`
	// PasswordSecret names the site secret (secrets.<name>) holding the role's
	// password (AppPasswordSecretName by default).
	PasswordSecret string `json:"password_secret"`
}

// AppRoleName is the PostgreSQL role sitectl makes for an app by default:
// "app_" and the app's name with its dashes as underscores (notes-api → app_notes_api).
func AppRoleName(app string) string { return "app_" + strings.ReplaceAll(app, "-", "_") }

// AppPasswordSecretName is the site secret holding an app's role's password by
// default: secrets.<app>-db-password.
func AppPasswordSecretName(app string) string { return app + "-db-password" }

// What sitectl adds to an app's entry service for its database: these variables
// (the password only as a file, AppDatabaseTarget under /run/secrets) and the
// compose secret AppDatabaseSecret. An app's compose file may not set them itself.
const (
	AppDatabaseSecret = "sitectl-database-password"
	AppDatabaseTarget = "database-password"
)

// AppDatabaseEnv are the environment variables sitectl sets for an app's database.
var AppDatabaseEnv = []string{"DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD_FILE", "DATABASE_URL"}

// AppUserRef is, as an app's database user (x-sitectl.database.user), the site's
// application role, postgres.app_user, with its password postgres.app_password:
// the role the Django API connects as, which sitectl keeps with the postgres stack
// (not an app role step, never dropped by an app's prune).
const AppUserRef = "postgres.app_user"

// SharesAppRole says whether the app connects as the site's application role
// (AppUserRef) rather than a role of its own.
func (d *AppDatabase) SharesAppRole() bool { return d != nil && d.User == AppUserRef }

// UserAt is the role the app connects as at site s.
func (d *AppDatabase) UserAt(s *Site) string {
	if d.SharesAppRole() {
		return s.Postgres.AppUser
	}
	return d.User
}

// PasswordAt is the reference to the role's password at site s.
func (d *AppDatabase) PasswordAt(s *Site) SecretRef {
	if d.SharesAppRole() {
		return s.Postgres.AppPassword
	}
	return s.Secrets[d.PasswordSecret]
}

// AppRoute is one route of an app: a path prefix (and optional hosts), served at
// every site that runs the app (At "local") or at the hub only (At "hub": spokes'
// Kong forwards it to the hub's, like /admin).
type AppRoute struct {
	Path  string   `json:"path"`
	Hosts []string `json:"hosts,omitempty"`
	At    string   `json:"at"`
	// Failover is FailoverPeers when the site's Kong sends the route to peer
	// sites' Kong while the local app is not ready (x-sitectl.routes[].failover).
	Failover string `json:"failover,omitempty"`
}

// FailoverPeers is the one failover a route may declare: to the peer sites (the
// site's values.kong.failover order) that run the app.
const FailoverPeers = "peers"

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

// Runs says whether site runs name: a built-in stack it lists, or an app of the
// topology deployed there (the Django API is either, design decision 30).
func (t *Topology) Runs(site, name string) bool {
	if s := t.Site(site); s != nil && s.HasStack(name) {
		return true
	}
	if a := t.App(name); a != nil {
		_, ok := a.Sites[site]
		return ok
	}
	return false
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
