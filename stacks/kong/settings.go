package kong

import (
	"fmt"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// Settings are the kong stack's values for one site (values.kong in the site
// config), with their defaults.
type Settings struct {
	// HTTPPort and HTTPSPort are the published proxy ports (8000 and 8443 inside).
	HTTPPort  int
	HTTPSPort int
	// Constraints place Kong (one task per matching node: mode global).
	Constraints []string
	// APIService and APIPort name the django-api service Kong routes /api to, as the
	// swarm resolves it (<stack>_<service>).
	APIService string
	APIPort    int
	// HealthPath is the django-api readiness path the active health check probes
	// (200 only while the API's database answers); with failover it is under /api,
	// so a peer's Kong routes the probe to the peer's API.
	HealthPath string
	// AdminHealthPath is probed on the hub's Kong by spokes' admin upstream.
	AdminHealthPath string
	// Rate limits per client IP and minute.
	APIPerMinute   int
	AdminPerMinute int
	Canary         Canary
	// Healthchecks adds the container health check (kong health); the lab's
	// stand-in images may turn it off.
	Healthchecks bool
	// HealthInterval is the container health check's interval.
	HealthInterval string
	// APIReplicas is the django-api replica count (values.django-api.replicas), used
	// to keep the canary split right when names resolve to every task (dnsrr).
	APIReplicas int
	TLSCert     string
	// AdminCA names the secret holding the CA (PEM) that signed the hub's Kong
	// certificate (the operator's own PKI): set, a spoke's /admin upstream verifies
	// the hub's certificate against it; empty, against sitectl's Kong CA, which then
	// signs the certificate the hub's Kong serves (AdminPKI).
	AdminCA string
	// AdminTLSVerify is values.kong.admin.tls_verify (default true): false turns
	// the verification off (`sitectl audit` reports it as high).
	AdminTLSVerify bool
	TLSKey         string
	// Failover lists the peer sites /api fails over to (values.kong.failover); nil
	// when unset (FailoverPeers then takes the linked sites, the hub first).
	Failover []string
}

// Canary is a weighted split of /api between the stable django-api and a canary.
type Canary struct {
	Enabled  bool
	Weight   int // percent of requests to the canary, 1..99
	Service  string
	Port     int
	Replicas int
}

// ReadSettings reads values.kong of site (and values.django-api.replicas).
func ReadSettings(topo *sites.Topology, site *sites.Site) (Settings, error) {
	v := targets.ValuesOf(topo, site, Name)
	s := Settings{
		HTTPPort:        v.Int("http_port", 80),
		HTTPSPort:       v.Int("https_port", 443),
		Constraints:     v.Strings("constraints", []string{"node.labels.role != db"}),
		APIService:      v.String("api.service", "django-api_api"),
		APIPort:         v.Int("api.port", 8000),
		HealthPath:      v.String("api.health_path", "/api/ready"),
		AdminHealthPath: v.String("admin.health_path", "/admin/login/"),
		APIPerMinute:    v.Int("rate_limit.api_per_minute", 600),
		AdminPerMinute:  v.Int("rate_limit.admin_per_minute", 60),
		Healthchecks:    v.Bool("healthchecks", true),
		HealthInterval:  v.String("health_interval", "10s"),
		TLSCert:         v.String("tls.cert", "kong-tls-cert"),
		TLSKey:          v.String("tls.key", "kong-tls-key"),
		AdminCA:         v.String("admin.ca", ""),
		Failover:        v.Strings("failover", nil),
		AdminTLSVerify:  v.Bool("admin.tls_verify", true),
		Canary: Canary{
			Enabled:  v.Bool("canary.enabled", false),
			Weight:   v.Int("canary.weight", 10),
			Service:  v.String("canary.service", "django-api_api-canary"),
			Port:     v.Int("canary.port", 8000),
			Replicas: v.Int("canary.replicas", 1),
		},
	}
	s.APIReplicas = targets.ValuesOf(topo, site, "django-api").Int("replicas", 1)
	if err := v.Err(); err != nil {
		return s, err
	}
	if _, err := time.ParseDuration(s.HealthInterval); err != nil {
		return s, fmt.Errorf("site %s: values.kong.health_interval is %q; want a duration such as 2s or 10s", site.Name, s.HealthInterval)
	}
	if s.Canary.Enabled && (s.Canary.Weight < 1 || s.Canary.Weight > 99) {
		return s, fmt.Errorf("site %s: values.kong.canary.weight is %d; want a percentage from 1 to 99 (or canary.enabled: false)", site.Name, s.Canary.Weight)
	}
	if s.Canary.Enabled && s.Canary.Replicas < 1 {
		return s, fmt.Errorf("site %s: values.kong.canary.replicas is %d; want at least 1", site.Name, s.Canary.Replicas)
	}
	if s.APIReplicas < 1 {
		s.APIReplicas = 1
	}
	for _, p := range []struct {
		key string
		n   int
	}{{"http_port", s.HTTPPort}, {"https_port", s.HTTPSPort}, {"api.port", s.APIPort}} {
		if p.n < 1 || p.n > 65535 {
			return s, fmt.Errorf("site %s: values.kong.%s is %d; want a port from 1 to 65535", site.Name, p.key, p.n)
		}
	}
	return s, nil
}

// Nodes returns the nodes of site that run Kong (its placement constraints).
func Nodes(topo *sites.Topology, site *sites.Site) ([]sites.Node, error) {
	s, err := ReadSettings(topo, site)
	if err != nil {
		return nil, err
	}
	return targets.Matching(site, s.Constraints)
}
