// Package kong is the kong stack: a DB-less Kong gateway per site whose declarative
// kong.yml is generated from the topology (routes, upstreams with health checks,
// rate limiting, request ids, a weighted canary) and whose TLS certificate comes
// from Docker secrets. The gateway adds TLS and routing in front of a django-api
// that knows nothing about either.
package kong

import (
	_ "embed"
	"fmt"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// Name is the stack's name (its folder under stacks/).
const Name = "kong"

//go:embed compose.yml.tmpl
var composeTemplate []byte

func init() { stacks.Register(Stack{}) }

// Stack renders the kong stack.
type Stack struct{}

// Name implements stacks.Stack.
func (Stack) Name() string { return Name }

// composeData is what compose.yml.tmpl sees as .Extra.
type composeData struct {
	Settings
	Constraints []string
	ShipLogs    bool
	GELFPort    int
	StatusPort  int
	// TrustedCA: kong.yml's HTTPS health checks verify the hub's certificate, so
	// Kong's lua_ssl_trusted_certificate lists the CA (upstream-ca.pem).
	TrustedCA bool
}

// Render implements stacks.Stack: compose.yml plus kong.yml.
func (Stack) Render(in stacks.Input) (stacks.Rendered, error) {
	s, err := ReadSettings(in.Topo, in.Site)
	if err != nil {
		return stacks.Rendered{}, err
	}
	if _, err := targets.Matching(in.Site, s.Constraints); err != nil {
		return stacks.Rendered{}, fmt.Errorf("kong at %s: %w (values.kong.constraints)", in.Site.Name, err)
	}
	for _, name := range []string{s.TLSCert, s.TLSKey} {
		if _, ok := in.Site.Secrets[name]; !ok {
			return stacks.Rendered{}, fmt.Errorf("kong at %s: TLS needs the secret %q, which the site does not name: add secrets.%s: {env: VAR} or {file: /path} to %s.yaml or defaults.yaml", in.Site.Name, name, name, in.Site.Name)
		}
	}
	conf, err := Config(in.Topo, in.Site)
	if err != nil {
		return stacks.Rendered{}, err
	}
	ca, err := healthCheckCA(in.Topo, in.Site, s)
	if err != nil {
		return stacks.Rendered{}, err
	}
	compose, err := stacks.ExecTemplate("kong/compose.yml.tmpl", composeTemplate, stacks.TemplateData{
		Site: in.Site, Topo: in.Topo, Env: in.Env(), Stack: Name,
		Values: stacks.Values(in, Name, nil),
		Extra: composeData{Settings: s, Constraints: s.Constraints,
			ShipLogs: in.Site.HasStack("elk"), GELFPort: targets.LogstashGELFPort, StatusPort: targets.KongStatusPort, TrustedCA: ca != ""},
	})
	if err != nil {
		return stacks.Rendered{}, err
	}
	r := stacks.Rendered{Stack: Name, Compose: compose, Files: map[string][]byte{"kong.yml": conf}}
	if ca != "" {
		r.Files[UpstreamCAFile] = []byte(ca)
	}
	if in.Site.IsHub() {
		own, err := SitectlTLS(in.Topo)
		if err != nil {
			return stacks.Rendered{}, err
		}
		if own {
			if r.Secrets, err = hubSecrets(in.Topo, s); err != nil {
				return stacks.Rendered{}, err
			}
		}
	}
	return r, nil
}

// UpstreamCAFile is the CA a spoke's Kong verifies the hub's certificate against in
// its active health checks, mounted at /kong/upstream-ca.pem.
const UpstreamCAFile = "upstream-ca.pem"

// healthCheckCA is the CA PEM a site's Kong must trust for its HTTPS health checks
// of the hub's Kong (/admin and routes forwarded to the hub, https_verify_certificate
// on), "" when none. Kong verifies a health check's handshake against
// lua_ssl_trusted_certificate only (the OpenResty cosocket's store): a service's
// ca_certificates cover proxied requests, not the health checker. Without the CA
// there, every hub target would stay unhealthy and /admin would answer 503.
func healthCheckCA(topo *sites.Topology, site *sites.Site, s Settings) (string, error) {
	if site.IsHub() || !s.AdminTLSVerify {
		return "", nil
	}
	return trustedCA(topo, site, s)
}
