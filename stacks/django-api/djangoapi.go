// Package djangoapi is the django-api stack: the stateless API of every site, on the
// app nodes, talking to the site's own PostgreSQL and to the MongoDB replica set,
// rolling updates that start the new task first and roll back on failure.
package djangoapi

import (
	_ "embed"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
)

//go:embed compose.yaml.tmpl
var composeTemplate []byte

// Name is the stack's name.
const Name = "django-api"

// Defaults are the stack's values; a site overrides them under values.django-api.
var Defaults = map[string]any{
	"replicas": 1,
	"port":     8000,
	// published_port publishes the API outside the overlay networks (0: not
	// published; Kong on the edge network is what clients reach).
	"published_port":  0,
	"health_interval": "5s",
	// Generous on purpose: Django starts slowly on a loaded machine.
	"health_timeout":      "10s",
	"health_retries":      5,
	"health_start_period": "60s",
	// health_path is the API's liveness endpoint, the swarm health check's (200
	// while the process is up); Kong probes readiness (values.kong.api.health_path).
	"health_path": "/healthz",
	// healthcheck is the probe inside the container: python (python3 urllib, any
	// Django image has it), curl (an image with curl; cheaper per check) or none.
	"healthcheck": "python",
	// health_retry is how long one health check retries a failing answer (the
	// database not reachable yet, the server not listening yet) before it counts as
	// failed: an API whose database becomes healthy a moment after the check began
	// is healthy at that check, not one health_interval later. 0s: no retry. Must
	// be shorter than health_timeout.
	"health_retry": "3s",
	// monitor is how long a new task must stay healthy before the update moves on.
	"monitor": "15s",
}

func init() { stacks.Register(Stack{}) }

// Stack renders the django-api stack.
type Stack struct{}

// Name is "django-api".
func (Stack) Name() string { return Name }

// Extra is what the template sees besides the values.
type Extra struct {
	Replicas    int
	Publish     bool
	Order       string
	OrderReason string
	DatabaseURL string
	MongoURI    string
	Constraint  string
	HealthTest  string
	// RollsAfter are the services of other stacks the API rolls after (the site's
	// PostgreSQL: a rolling update during the database's restart would fail). It is
	// created with them: its health check retries (health_retry) within its start
	// period while the database starts.
	RollsAfter []string
	// Variants are the API services: the stable one, and the canary when Kong splits
	// /api between two versions (values.kong.canary).
	Variants []Variant
}

// Variant is one API service of the stack.
type Variant struct {
	Service  string // service key in the stack: api, api-canary
	Variant  string // stable | canary (env API_VARIANT)
	Role     string // label sitectl.role
	Image    string
	Replicas int
	Publish  bool
}

// Render renders the compose file for in.Site.
func (Stack) Render(in stacks.Input) (stacks.Rendered, error) {
	s := in.Site
	if err := stacks.CheckValues(in, Name, Defaults); err != nil {
		return stacks.Rendered{}, err
	}
	vals := stacks.Values(in, Name, Defaults)
	replicas, err := toInt(vals["replicas"])
	if err != nil || replicas < 0 {
		return stacks.Rendered{}, fmt.Errorf("values.%s.replicas is %v: want a whole number ≥ 0", Name, vals["replicas"])
	}
	published, err := toInt(vals["published_port"])
	if err != nil {
		return stacks.Rendered{}, fmt.Errorf("values.%s.published_port is %v: want a port number (0: not published)", Name, vals["published_port"])
	}
	x := Extra{Replicas: replicas, Publish: published > 0, Order: "start-first",
		OrderReason: "start-first: the new task is healthy before the old one stops",
		DatabaseURL: DatabaseURL(s), MongoURI: MongoURI(in.Topo, s), Constraint: Placement(s)}
	if s.HasStack("postgres") {
		x.RollsAfter = []string{DatabaseService}
	}
	url := fmt.Sprintf("http://127.0.0.1:%v%v", vals["port"], vals["health_path"])
	if x.HealthTest, err = healthTest(vals, url); err != nil {
		return stacks.Rendered{}, fmt.Errorf("site %s: %w", s.Name, err)
	}
	if x.Publish && s.Deploy.PublishMode == "host" {
		// Two tasks cannot bind one host port on one node.
		x.Order, x.OrderReason = "stop-first", "stop-first: a host-mode port cannot be bound by two tasks on one node"
	}
	if x.Publish && s.Deploy.PublishMode == "ingress" && s.Deploy.EndpointMode == "dnsrr" {
		return stacks.Rendered{}, fmt.Errorf("site %s: an ingress-published port needs deploy.endpoint_mode vip (dnsrr needs deploy.publish_mode host)", s.Name)
	}
	image := s.Images["django-api"]
	if image == "" {
		return stacks.Rendered{}, fmt.Errorf("site %s has no image for %q: set images.django-api in its config", s.Name, "django-api")
	}
	x.Variants = []Variant{{Service: "api", Variant: "stable", Role: "api", Image: image, Replicas: replicas, Publish: x.Publish}}
	canary, err := kong.ReadSettings(in.Topo, s)
	if err != nil {
		return stacks.Rendered{}, err
	}
	if c := canary.Canary; c.Enabled && strings.HasPrefix(c.Service, Name+"_") {
		img := s.Images["django-api-canary"]
		if img == "" {
			return stacks.Rendered{}, fmt.Errorf("site %s: values.kong.canary is enabled but images.django-api-canary is not set: name the canary version's image", s.Name)
		}
		// Kong reaches the canary over the edge network; only the stable service
		// publishes the site's port.
		x.Variants = append(x.Variants, Variant{Service: strings.TrimPrefix(c.Service, Name+"_"), Variant: "canary",
			Role: "api-canary", Image: img, Replicas: c.Replicas})
	}
	out, err := stacks.ExecTemplate("django-api/compose.yaml.tmpl", composeTemplate, stacks.TemplateData{
		Site: s, Topo: in.Topo, Env: in.Env(), Stack: Name, Values: vals, Extra: x,
	})
	if err != nil {
		return stacks.Rendered{}, err
	}
	if s.Postgres.AppPassword.IsZero() {
		return stacks.Rendered{}, fmt.Errorf("site %s: postgres.app_password is not set: name the application role's password ({env: VAR} or {file: path})", s.Name)
	}
	return stacks.Rendered{Stack: Name, Compose: out, Secrets: map[string]sites.SecretRef{AppPasswordSecret: s.Postgres.AppPassword}}, nil
}

// healthTest is the healthcheck test (a JSON list, which is YAML) for
// values.healthcheck, retrying for values.health_retry.
func healthTest(vals map[string]any, url string) (string, error) {
	retry, err := time.ParseDuration(fmt.Sprint(vals["health_retry"]))
	if err != nil || retry < 0 {
		return "", fmt.Errorf("values.%s.health_retry is %v: want a duration such as 3s (0s: no retry)", Name, vals["health_retry"])
	}
	timeout, err := time.ParseDuration(fmt.Sprint(vals["health_timeout"]))
	if err != nil || timeout <= 0 {
		return "", fmt.Errorf("values.%s.health_timeout is %v: want a duration such as 10s", Name, vals["health_timeout"])
	}
	if retry > 0 && retry+time.Second >= timeout {
		return "", fmt.Errorf("values.%s.health_retry (%s) leaves no time for a last try within health_timeout (%s): lower health_retry or raise health_timeout", Name, retry, timeout)
	}
	var test []string
	switch vals["healthcheck"] {
	case "python":
		// The last try gets what is left of health_timeout (less a second for the
		// interpreter), so a slow answer is not cut short by the retry window.
		prog := fmt.Sprintf("import time, urllib.request as u\nend = time.time() + %g\nwhile True:\n"+
			"    try:\n        u.urlopen(%q, timeout=max(1, end + %g - time.time())); break\n"+
			"    except Exception:\n        if time.time() >= end: raise\n        time.sleep(1)",
			retry.Seconds(), url, (timeout - retry - time.Second).Seconds())
		test = []string{"CMD", "python3", "-c", prog}
	case "curl":
		test = []string{"CMD", "curl", "-fsS", "-o", "/dev/null"}
		if secs := int(retry.Round(time.Second) / time.Second); secs > 0 {
			// 503 (database not reachable) and refused connections are retried.
			test = append(test, "--retry", fmt.Sprint(secs), "--retry-delay", "1", "--retry-connrefused",
				"--retry-max-time", fmt.Sprint(secs))
		}
		test = append(test, url)
	case "none":
		test = []string{"NONE"}
	default:
		return "", fmt.Errorf("values.%s.healthcheck is %v: allowed: python, curl, none", Name, vals["healthcheck"])
	}
	return stacks.JSONList(test)
}

// Placement is the API's placement constraint: the app nodes, or on a site without
// any the site's own nodes (stacks.AppNodes, which apps share).
func Placement(s *sites.Site) string { return stacks.AppNodes(s) }

// DatabaseService is the swarm service of the postgres stack's database.
const DatabaseService = "postgres_db"

// AppPasswordSecret is the stack's secret holding the application role's password
// (postgres.app_password), mounted at /run/secrets/AppPasswordSecret.
const AppPasswordSecret = "postgres-app-password"

// DatabaseURL is the site-local PostgreSQL (the postgres stack's service on the data
// network, else postgres.host) as the application's own role (postgres.app_user),
// without a password: that comes from the secret file.
func DatabaseURL(s *sites.Site) string {
	host := s.Postgres.Host
	if s.HasStack("postgres") {
		host = DatabaseService
	}
	port := s.Postgres.Port
	if port == 0 {
		port = 5432
	}
	u := url.URL{Scheme: "postgres", User: url.User(s.Postgres.AppUser), Host: fmt.Sprintf("%s:%d", host, port), Path: "/" + s.Postgres.Database}
	if s.Postgres.SSLMode != "" {
		u.RawQuery = "sslmode=" + s.Postgres.SSLMode
	}
	return u.String()
}

// MongoURI lists every member of the replica set across the sites, this site's
// first, with the site's read preference (no credentials): stacks.MongoURI.
func MongoURI(t *sites.Topology, s *sites.Site) string { return stacks.MongoURI(t, s) }

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case float64:
		if x != float64(int(x)) {
			return 0, fmt.Errorf("not whole")
		}
		return int(x), nil
	case string:
		return strconv.Atoi(strings.TrimSpace(x))
	}
	return 0, fmt.Errorf("unsupported type %T", v)
}
