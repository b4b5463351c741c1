package ci

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// Variable is one CI/CD variable a pipeline reads. Only names live in the pipeline;
// values are set in GitLab (Settings > CI/CD > Variables) and never written anywhere.
type Variable struct {
	Name string `json:"name"`
	// File variables are GitLab "File" type: the job sees a path to a file holding
	// the value (keys, certificates, known_hosts).
	File bool `json:"file"`
	// Secret variables must be masked (when GitLab can mask them) and protected.
	Secret bool `json:"secret"`
	// Default is the value the pipeline falls back on (from the config) when the
	// variable is not set in GitLab; empty means it must be set.
	Default string `json:"default,omitempty"`
	// Prefix, when set, is what the value must start with (ssh://, tcp://).
	Prefix string `json:"prefix,omitempty"`
	// Sites are the sites that need it.
	Sites   []string `json:"sites"`
	Purpose string   `json:"purpose"`
}

// Optional reports whether a job works with the variable unset in GitLab: it then
// gets Default, the value the configuration gives, as a job variable. The one rule
// `ci variables`, the pipeline's header and `ci check` all follow.
func (v Variable) Optional() bool { return v.Default != "" }

// Transport is how a CI job reaches a site's Docker engine.
type Transport string

// Transports a CI runner can use; unix sockets and docker contexts are local to a
// machine and are refused.
const (
	TransportSSH Transport = "ssh"
	TransportTLS Transport = "tcp+tls"
)

// SiteAccess is what a job needs to reach one site.
type SiteAccess struct {
	Site      string
	Transport Transport
	// SSH is true when anything of the site is reached over ssh:// (the engine, a
	// node's engine, or the gateway's vici socket).
	SSH  bool
	Vars []Variable
}

// VarSuffix turns a site name into the suffix of its variables: "garoua-north" →
// "GAROUA_NORTH".
func VarSuffix(site string) string {
	return strings.ToUpper(strings.ReplaceAll(site, "-", "_"))
}

// Names of the per-site variables.
func dockerHostVar(site string) string        { return "DOCKER_HOST_" + VarSuffix(site) }
func tlsCAVar(site string) string             { return "DOCKER_TLS_CA_" + VarSuffix(site) }
func tlsCertVar(site string) string           { return "DOCKER_TLS_CERT_" + VarSuffix(site) }
func tlsKeyVar(site string) string            { return "DOCKER_TLS_KEY_" + VarSuffix(site) }
func sshKeyVar(site string) string            { return "SSH_KEY_" + VarSuffix(site) }
func sshKnownHostsVar(site string) string     { return "SSH_KNOWN_HOSTS_" + VarSuffix(site) }
func siteOverrideVar(site, key string) string { return "SITECTL_" + VarSuffix(site) + "__" + key }

// Access works out how CI reaches the site and which variables that takes. A site
// whose engine a runner cannot reach (none configured, a unix socket, a docker
// context, plain tcp without TLS) is an error naming the file to fix.
func Access(topo *sites.Topology, s *sites.Site) (SiteAccess, error) {
	a := SiteAccess{Site: s.Name}
	where := topo.Origin(s.Name, "engine.host")
	host := s.Engine.Host
	hostVar := dockerHostVar(s.Name)
	fix := fmt.Sprintf("set engine.host for %s in %s (or the %s overlay) to ssh://user@host or tcp://host:2376 with tls_verify: true; the pipeline uses it unless CI/CD variable %s overrides it",
		s.Name, where, topo.Env, hostVar)
	switch {
	case host == "" && s.Engine.Context != "":
		return a, fmt.Errorf("site %s: engine.context %q names a docker context, which lives on an operator's machine, not on a CI runner: %s", s.Name, s.Engine.Context, fix)
	case host == "":
		return a, fmt.Errorf("site %s: no Docker endpoint configured: %s", s.Name, fix)
	}
	u, err := url.Parse(host)
	if err != nil {
		return a, fmt.Errorf("site %s: engine.host %q is not a URL: %s", s.Name, host, fix)
	}
	switch u.Scheme {
	case "ssh":
		a.Transport, a.SSH = TransportSSH, true
		a.Vars = append(a.Vars, Variable{Name: hostVar, Default: host, Prefix: "ssh://", Purpose: "Docker engine of " + s.Name + " (ssh://user@host)"})
	case "tcp":
		if !s.Engine.TLSVerify {
			return a, fmt.Errorf("site %s: engine.host %s is plain TCP without TLS (engine.tls_verify is false in %s): a runner must not reach an engine unauthenticated; set tls_verify: true with ca_cert, cert and key, or use ssh://",
				s.Name, host, topo.Origin(s.Name, "engine.tls_verify"))
		}
		a.Transport = TransportTLS
		a.Vars = append(a.Vars,
			Variable{Name: hostVar, Default: host, Prefix: "tcp://", Purpose: "Docker engine of " + s.Name + " (tcp://host:2376)"},
			Variable{Name: tlsCAVar(s.Name), File: true, Purpose: "CA certificate (PEM) that signed the engine's certificate"},
			Variable{Name: tlsCertVar(s.Name), File: true, Purpose: "client certificate (PEM) for the engine"},
			Variable{Name: tlsKeyVar(s.Name), File: true, Secret: true, Purpose: "client private key (PEM) for the engine"})
	case "unix", "npipe":
		return a, fmt.Errorf("site %s: engine.host %s (from %s) is a local socket a GitLab runner cannot reach: %s", s.Name, host, where, fix)
	default:
		return a, fmt.Errorf("site %s: engine.host %s: scheme %q is not supported: %s", s.Name, host, u.Scheme, fix)
	}
	if !a.SSH {
		for _, n := range s.Nodes {
			if strings.HasPrefix(n.Engine, "ssh://") {
				a.SSH = true
			}
		}
		if strings.HasPrefix(s.Gateway.Vici, "ssh://") {
			a.SSH = true
		}
	}
	if a.SSH {
		a.Vars = append(a.Vars,
			Variable{Name: sshKeyVar(s.Name), File: true, Secret: true, Purpose: "SSH private key for the engines and gateway of " + s.Name},
			Variable{Name: sshKnownHostsVar(s.Name), File: true, Purpose: "known_hosts lines for the SSH hosts of " + s.Name})
	}
	for i := range a.Vars {
		a.Vars[i].Sites = []string{s.Name}
	}
	return a, nil
}

// SecretVars lists the environment variables the sites' secret references name
// (sites.SecretRef.Env). A reference to a file is refused: a runner has no such file.
// Docker-secret references are read by services inside the swarm, not by sitectl.
func SecretVars(topo *sites.Topology, ss []*sites.Site) ([]Variable, error) {
	byName := map[string]*Variable{}
	keys := map[string][]string{}
	var errs []error
	for _, s := range ss {
		for _, r := range secretRefs(s) {
			switch {
			case r.ref.Env != "":
				v := byName[r.ref.Env]
				if v == nil {
					v = &Variable{Name: r.ref.Env, Secret: true}
					byName[r.ref.Env] = v
					keys[r.ref.Env] = nil
				}
				if !slices.Contains(keys[r.ref.Env], r.key) {
					keys[r.ref.Env] = append(keys[r.ref.Env], r.key)
				}
				if !slices.Contains(v.Sites, s.Name) {
					v.Sites = append(v.Sites, s.Name)
				}
			case r.ref.File != "":
				errs = append(errs, fmt.Errorf("site %s: %s reads its secret from file %s, which a CI runner does not have: name a CI/CD variable instead (%s: {env: NAME}) in %s",
					s.Name, r.key, r.ref.File, r.key, topo.Origin(s.Name, r.key+".file")))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]Variable, 0, len(byName))
	for name, v := range byName {
		sort.Strings(keys[name])
		v.Purpose = "secret for " + strings.Join(keys[name], ", ")
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type namedRef struct {
	key string
	ref sites.SecretRef
}

// secretRefs lists every secret reference of a site, by config key.
func secretRefs(s *sites.Site) []namedRef {
	refs := []namedRef{
		{"postgres.password", s.Postgres.Password},
		{"mongo.keyfile", s.Mongo.KeyFile},
		{"mongo.password", s.Mongo.Password},
		{"tunnel.psk", s.Tunnel.PSK},
	}
	names := make([]string, 0, len(s.Secrets))
	for n := range s.Secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		refs = append(refs, namedRef{"secrets." + n, s.Secrets[n]})
	}
	// The receivers' secrets of the hub's Alertmanager (stacks/monitoring).
	for i, r := range s.Alerting.Receivers {
		for j, w := range r.Webhooks {
			refs = append(refs, namedRef{fmt.Sprintf("alerting.receivers[%d].webhooks[%d].token", i, j), w.Token})
		}
		for j, e := range r.Emails {
			refs = append(refs, namedRef{fmt.Sprintf("alerting.receivers[%d].emails[%d].password", i, j), e.Password})
		}
	}
	out := refs[:0]
	for _, r := range refs {
		if !r.ref.IsZero() {
			out = append(out, r)
		}
	}
	return out
}

// Variables lists every CI/CD variable the pipeline of topo reads, sorted by name,
// each with the sites that need it.
func Variables(topo *sites.Topology) ([]Variable, error) { return Needed(topo, nil) }
