package kong

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// The subset of Kong's declarative format (_format_version 3.0) sitectl writes.
// Field names are Kong's; Validate checks a file against the format independently.
type declarative struct {
	FormatVersion string     `yaml:"_format_version"`
	Transform     bool       `yaml:"_transform"`
	Services      []service  `yaml:"services"`
	Upstreams     []upstream `yaml:"upstreams"`
	Plugins       []plugin   `yaml:"plugins"`
	CACerts       []caCert   `yaml:"ca_certificates,omitempty"`
}

type caCert struct {
	ID   string   `yaml:"id"`
	Cert string   `yaml:"cert"`
	Tags []string `yaml:"tags"`
}

type service struct {
	Name           string   `yaml:"name"`
	Protocol       string   `yaml:"protocol"`
	Host           string   `yaml:"host"`
	Port           int      `yaml:"port"`
	Retries        int      `yaml:"retries"`
	ConnectTimeout int      `yaml:"connect_timeout"`
	ReadTimeout    int      `yaml:"read_timeout"`
	WriteTimeout   int      `yaml:"write_timeout"`
	TLSVerify      *bool    `yaml:"tls_verify,omitempty"`
	CACertificates []string `yaml:"ca_certificates,omitempty"`
	Tags           []string `yaml:"tags"`
	Routes         []route  `yaml:"routes"`
	Plugins        []plugin `yaml:"plugins,omitempty"`
}

type route struct {
	Name                    string              `yaml:"name"`
	Paths                   []string            `yaml:"paths"`
	Hosts                   []string            `yaml:"hosts,omitempty"`
	Headers                 map[string][]string `yaml:"headers,omitempty"`
	Protocols               []string            `yaml:"protocols"`
	StripPath               bool                `yaml:"strip_path"`
	PreserveHost            bool                `yaml:"preserve_host"`
	HTTPSRedirectStatusCode int                 `yaml:"https_redirect_status_code"`
	Tags                    []string            `yaml:"tags"`
}

type upstream struct {
	Name         string       `yaml:"name"`
	Algorithm    string       `yaml:"algorithm"`
	Healthchecks healthchecks `yaml:"healthchecks"`
	Tags         []string     `yaml:"tags"`
	Targets      []target     `yaml:"targets"`
}

type target struct {
	Target string   `yaml:"target"`
	Weight int      `yaml:"weight"`
	Tags   []string `yaml:"tags"`
}

type healthchecks struct {
	Threshold int     `yaml:"threshold"`
	Active    active  `yaml:"active"`
	Passive   passive `yaml:"passive"`
}

type active struct {
	Type                   string              `yaml:"type"`
	HTTPPath               string              `yaml:"http_path"`
	Timeout                int                 `yaml:"timeout"`
	Concurrency            int                 `yaml:"concurrency"`
	HTTPSVerifyCertificate bool                `yaml:"https_verify_certificate"`
	Headers                map[string][]string `yaml:"headers,omitempty"`
	Healthy                healthy             `yaml:"healthy"`
	Unhealthy              unhealthy           `yaml:"unhealthy"`
}

type passive struct {
	Type      string    `yaml:"type"`
	Healthy   healthy   `yaml:"healthy"`
	Unhealthy unhealthy `yaml:"unhealthy"`
}

type healthy struct {
	Interval     *int  `yaml:"interval,omitempty"`
	HTTPStatuses []int `yaml:"http_statuses"`
	Successes    int   `yaml:"successes"`
}

type unhealthy struct {
	Interval     *int  `yaml:"interval,omitempty"`
	HTTPStatuses []int `yaml:"http_statuses"`
	TCPFailures  int   `yaml:"tcp_failures"`
	Timeouts     int   `yaml:"timeouts"`
	HTTPFailures int   `yaml:"http_failures"`
}

type plugin struct {
	Name   string         `yaml:"name"`
	Config map[string]any `yaml:"config"`
	Tags   []string       `yaml:"tags"`
}

// apiStack is the built-in stack Kong's /api and /admin route to.
const apiStack = "django-api"

// Upstream names (Kong resolves a service's host against upstream names first).
const (
	apiUpstream   = "django-api.local"
	adminUpstream = "admin.hub"
)

// Config generates kong.yml for site:
//   - /api → the site's own django-api (upstream django-api.local; with a canary,
//     weighted between the stable and the canary service), where the site runs the
//     built-in django-api stack;
//   - /admin → the hub's admin only, where the hub runs the built-in django-api
//     stack: at the hub the local django-api, at a spoke the hub's Kong nodes over
//     the tunnel (HTTPS on their LAN addresses);
//   - the apps' routes (appServices);
//   - active + passive health checks on every upstream, rate limiting per route's
//     service, correlation-id (X-Request-ID) and prometheus plugins globally.
//
// /api fails over to peer sites while the local API is not ready (failover.go,
// docs/gateway.md): Kong OSS 3.x has no priority targets, so the local target
// outweighs the peers' by far and the readiness checks take it out of rotation.
func Config(topo *sites.Topology, site *sites.Site) ([]byte, error) {
	s, err := ReadSettings(topo, site)
	if err != nil {
		return nil, err
	}
	hub := topo.HubSite()
	if hub == nil {
		return nil, fmt.Errorf("kong at %s: the topology has no hub site; /admin routes to the hub's admin", site.Name)
	}
	tags := []string{"sitectl", "site-" + site.Name}
	d := declarative{FormatVersion: "3.0", Transform: true}

	// The built-in /api and /admin follow the built-in django-api stack: /api where
	// the site runs it, /admin where the hub does (an app may declare them instead,
	// design decision 30).
	builtinAPI, builtinAdmin := site.HasStack(apiStack), hub.HasStack(apiStack)
	if builtinAPI {
		addBuiltinAPI(&d, site, s, tags)
	}
	var link *hubLink // how a spoke reaches the hub's Kong (port, TLS verification, targets)
	if !site.IsHub() && (builtinAdmin || forwardsToHub(topo)) {
		l, err := linkToHub(&d, topo, site, s, tags)
		if err != nil {
			return nil, err
		}
		link = &l
	}
	if builtinAdmin {
		admin := service{
			Name: "admin", Retries: 1, ConnectTimeout: 5000, ReadTimeout: 30000, WriteTimeout: 30000, Tags: tags,
			Routes:  []route{httpsRoute("admin", "/admin", tags)},
			Plugins: []plugin{rateLimit(s.AdminPerMinute, tags)},
		}
		if site.IsHub() {
			admin.Protocol, admin.Host, admin.Port = "http", apiUpstream, s.APIPort
		} else {
			link.apply(&admin)
			d.Upstreams = append(d.Upstreams, link.up)
		}
		d.Services = append(d.Services, admin)
	}
	if err := appServices(&d, topo, site, tags, link); err != nil {
		return nil, err
	}
	if builtinAPI {
		if err := addFailover(&d, topo, site, s, tags); err != nil {
			return nil, err
		}
	}

	d.Plugins = []plugin{
		{Name: "correlation-id", Tags: tags, Config: map[string]any{
			"header_name": "X-Request-ID", "generator": "uuid#counter", "echo_downstream": true}},
		{Name: "prometheus", Tags: tags, Config: map[string]any{
			"status_code_metrics": true, "latency_metrics": true,
			"upstream_health_metrics": true, "bandwidth_metrics": false, "per_consumer": false}},
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# kong.yml for %s (%s), generated by sitectl from the topology; do not edit.\n", site.Name, site.Env)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("kong at %s: encode kong.yml: %w", site.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if err := Validate(b.Bytes()); err != nil {
		return nil, fmt.Errorf("kong at %s: generated kong.yml is invalid (a sitectl bug): %w", site.Name, err)
	}
	return b.Bytes(), nil
}

// addBuiltinAPI adds /api to the site's own django-api (upstream django-api.local;
// with a canary, weighted between the stable and the canary service).
func addBuiltinAPI(d *declarative, site *sites.Site, s Settings, tags []string) {
	apiTargets := []target{{Target: targets.Addr(s.APIService, s.APIPort), Weight: 100, Tags: tags}}
	if s.Canary.Enabled {
		stable, canary := canaryWeights(site, s)
		apiTargets = []target{
			{Target: targets.Addr(s.APIService, s.APIPort), Weight: stable, Tags: append(clone(tags), "stable")},
			{Target: targets.Addr(s.Canary.Service, s.Canary.Port), Weight: canary, Tags: append(clone(tags), "canary")},
		}
	}
	d.Upstreams = append(d.Upstreams, upstream{
		Name: apiUpstream, Algorithm: "round-robin", Tags: tags,
		Healthchecks: checks("http", s.HealthPath, []int{200}),
		Targets:      apiTargets,
	})
	d.Services = append(d.Services, service{
		Name: "api", Protocol: "http", Host: apiUpstream, Port: s.APIPort,
		Retries: 2, ConnectTimeout: 5000, ReadTimeout: 30000, WriteTimeout: 30000, Tags: tags,
		Routes:  []route{httpsRoute("api", "/api", tags)},
		Plugins: []plugin{rateLimit(s.APIPerMinute, tags)},
	})
}

// adminCA reads the CA certificate the secret name holds (values.kong.admin.ca): a
// PEM CA certificate (Kong refuses a ca_certificate that is not a CA).
func adminCA(site *sites.Site, name string) (string, error) {
	ref, ok := site.Secrets[name]
	if !ok {
		return "", fmt.Errorf("kong at %s: values.kong.admin.ca names the secret %q, which the site does not name: add secrets.%s: {file: /path/to/ca.pem}, or unset values.kong.admin.ca", site.Name, name, name)
	}
	b, err := ref.Resolve()
	if err != nil {
		return "", fmt.Errorf("kong at %s: values.kong.admin.ca: %w", site.Name, err)
	}
	return caPEM(b, site, fmt.Sprintf("values.kong.admin.ca: secret %s (%s)", name, ref))
}

// hubLink is how a spoke's Kong reaches the hub's Kong: HTTPS to the hub's Kong
// nodes over the tunnel (upstream admin.hub), verifying the hub's certificate
// unless turned off. The built-in /admin and the apps' hub routes go this way.
type hubLink struct {
	port   int
	verify bool
	caIDs  []string // the CA certificates the services verify the hub against
	up     upstream // admin.hub: the hub's Kong nodes, health checked at /admin
}

// apply points svc at the hub's Kong.
func (l hubLink) apply(svc *service) {
	verify := l.verify
	svc.Protocol, svc.Host, svc.Port, svc.TLSVerify = "https", adminUpstream, l.port, &verify
	svc.CACertificates = slices.Clone(l.caIDs)
}

// forwardsToHub says whether an app has a route served by the hub only, which
// every spoke forwards.
func forwardsToHub(topo *sites.Topology) bool {
	for _, a := range topo.Apps {
		for _, r := range a.Routes {
			if r.At == sites.RouteHub {
				return true
			}
		}
	}
	return false
}

// linkToHub is site's link to the hub's Kong; it adds to d the CA certificate the
// spoke verifies the hub against.
func linkToHub(d *declarative, topo *sites.Topology, site *sites.Site, s Settings, tags []string) (hubLink, error) {
	hub := topo.HubSite()
	if !hub.HasStack(Name) {
		return hubLink{}, fmt.Errorf("kong at %s: /admin and the apps' hub routes go to the hub's Kong, but the hub %s does not run the kong stack: add kong to %s's stacks", site.Name, hub.Name, hub.Name)
	}
	hs, err := ReadSettings(topo, hub)
	if err != nil {
		return hubLink{}, err
	}
	nodes, err := targets.Matching(hub, hs.Constraints)
	if err != nil {
		return hubLink{}, fmt.Errorf("kong at %s: /admin goes to the hub's Kong: %w", site.Name, err)
	}
	l := hubLink{port: hs.HTTPSPort, verify: s.AdminTLSVerify}
	l.up = upstream{Name: adminUpstream, Algorithm: "round-robin", Tags: tags,
		Healthchecks: checks("https", s.AdminHealthPath, []int{200, 301, 302})}
	if l.verify {
		ca, err := trustedCA(topo, site, s)
		if err != nil {
			return hubLink{}, err
		}
		if ca != "" { // "": sitectl's CA is not created yet (deploy creates it first)
			id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(ca)).String()
			d.CACerts = append(d.CACerts, caCert{ID: id, Cert: ca, Tags: tags})
			l.caIDs = []string{id}
		}
		l.up.Healthchecks.Active.HTTPSVerifyCertificate = true
	}
	for _, n := range nodes {
		l.up.Targets = append(l.up.Targets, target{Target: targets.Addr(n.Address, hs.HTTPSPort), Weight: 100, Tags: append(clone(tags), "hub-"+hub.Name)})
	}
	return l, nil
}

// trustedCA is the CA a spoke verifies the hub's Kong against: the operator's
// (values.kong.admin.ca) when named, else sitectl's Kong CA.
func trustedCA(topo *sites.Topology, site *sites.Site, s Settings) (string, error) {
	if s.AdminCA != "" {
		return adminCA(site, s.AdminCA)
	}
	return sitectlCA(topo, site)
}

// canaryWeights returns per-target weights so that requests split
// (100-weight):weight. Kong gives every address a hostname resolves to the target's
// full weight; with endpoint_mode dnsrr a service name resolves to one address per
// task, so the weights are scaled by the other side's replica count. With vip the
// name is one virtual IP and the weights are the percentages themselves.
func canaryWeights(site *sites.Site, s Settings) (stable, canary int) {
	if site.Deploy.EndpointMode == "dnsrr" {
		return (100 - s.Canary.Weight) * s.Canary.Replicas, s.Canary.Weight * s.APIReplicas
	}
	return 100 - s.Canary.Weight, s.Canary.Weight
}

func checks(typ, path string, ok []int) healthchecks {
	five := 5
	return healthchecks{
		Threshold: 0,
		Active: active{
			Type: typ, HTTPPath: path, Timeout: 2, Concurrency: 4,
			Healthy:   healthy{Interval: &five, HTTPStatuses: ok, Successes: 2},
			Unhealthy: unhealthy{Interval: &five, HTTPStatuses: []int{429, 500, 502, 503, 504}, TCPFailures: 2, Timeouts: 3, HTTPFailures: 3},
		},
		Passive: passive{
			Type:      typ,
			Healthy:   healthy{HTTPStatuses: []int{200, 201, 202, 204, 301, 302, 304}, Successes: 10},
			Unhealthy: unhealthy{HTTPStatuses: []int{500, 502, 503, 504}, TCPFailures: 2, Timeouts: 3, HTTPFailures: 5},
		},
	}
}

// httpsRoute matches path over HTTPS only; a plain-HTTP request gets a 308 to HTTPS.
func httpsRoute(name, path string, tags []string) route {
	return route{Name: name, Paths: []string{path}, Protocols: []string{"https"},
		StripPath: false, PreserveHost: true, HTTPSRedirectStatusCode: 308, Tags: tags}
}

func rateLimit(perMinute int, tags []string) plugin {
	return plugin{Name: "rate-limiting", Tags: tags, Config: map[string]any{
		"minute": perMinute, "policy": "local", "limit_by": "ip", "fault_tolerant": true}}
}

func clone(s []string) []string { return append([]string(nil), s...) }
