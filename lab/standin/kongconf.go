package main

// The Kong stand-in's view of a declarative kong.yml (_format_version 3.0): the
// entities and fields sitectl's generated configuration relies on (stacks/kong),
// with Kong's defaults for what a file leaves out. It is read independently of
// stacks/kong's writer, so the stand-in checks the file as Kong would read it.

import (
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

type kongConfig struct {
	FormatVersion string         `yaml:"_format_version"`
	Services      []kongService  `yaml:"services"`
	Upstreams     []kongUpstream `yaml:"upstreams"`
	Plugins       []kongPlugin   `yaml:"plugins"`
}

type kongService struct {
	Name           string       `yaml:"name"`
	Protocol       string       `yaml:"protocol"`
	Host           string       `yaml:"host"`
	Port           int          `yaml:"port"`
	Path           string       `yaml:"path"`
	Retries        *int         `yaml:"retries"`
	ConnectTimeout int          `yaml:"connect_timeout"`
	ReadTimeout    int          `yaml:"read_timeout"`
	TLSVerify      *bool        `yaml:"tls_verify"`
	Routes         []kongRoute  `yaml:"routes"`
	Plugins        []kongPlugin `yaml:"plugins"`
}

type kongRoute struct {
	Name                    string              `yaml:"name"`
	Paths                   []string            `yaml:"paths"`
	Hosts                   []string            `yaml:"hosts"`
	Methods                 []string            `yaml:"methods"`
	Headers                 map[string][]string `yaml:"headers"`
	Protocols               []string            `yaml:"protocols"`
	StripPath               *bool               `yaml:"strip_path"`
	PreserveHost            bool                `yaml:"preserve_host"`
	HTTPSRedirectStatusCode int                 `yaml:"https_redirect_status_code"`
	Plugins                 []kongPlugin        `yaml:"plugins"`
}

type kongUpstream struct {
	Name         string           `yaml:"name"`
	Algorithm    string           `yaml:"algorithm"`
	HostHeader   string           `yaml:"host_header"`
	Healthchecks kongHealthchecks `yaml:"healthchecks"`
	Targets      []kongTarget     `yaml:"targets"`
}

type kongTarget struct {
	Target string `yaml:"target"`
	Weight *int   `yaml:"weight"`
}

type kongHealthchecks struct {
	Threshold float64     `yaml:"threshold"`
	Active    kongActive  `yaml:"active"`
	Passive   kongPassive `yaml:"passive"`
}

type kongActive struct {
	Type                   string              `yaml:"type"`
	HTTPPath               string              `yaml:"http_path"`
	Timeout                float64             `yaml:"timeout"`
	HTTPSVerifyCertificate bool                `yaml:"https_verify_certificate"`
	Headers                map[string][]string `yaml:"headers"`
	Healthy                kongCounters        `yaml:"healthy"`
	Unhealthy              kongCounters        `yaml:"unhealthy"`
}

type kongPassive struct {
	Type      string       `yaml:"type"`
	Healthy   kongCounters `yaml:"healthy"`
	Unhealthy kongCounters `yaml:"unhealthy"`
}

// kongCounters is a healthy or unhealthy block: an interval (active only, seconds,
// 0 = no probes), the statuses that count, and the counts that flip the state (0 =
// that kind never flips it).
type kongCounters struct {
	Interval     float64 `yaml:"interval"`
	HTTPStatuses []int   `yaml:"http_statuses"`
	Successes    int     `yaml:"successes"`
	TCPFailures  int     `yaml:"tcp_failures"`
	Timeouts     int     `yaml:"timeouts"`
	HTTPFailures int     `yaml:"http_failures"`
}

type kongPlugin struct {
	Name    string         `yaml:"name"`
	Enabled *bool          `yaml:"enabled"`
	Config  map[string]any `yaml:"config"`
}

// loadKongConfig reads a declarative file and applies Kong's defaults.
func loadKongConfig(path string) (*kongConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("declarative config (KONG_DECLARATIVE_CONFIG): %w", err)
	}
	return parseKongConfig(b)
}

func parseKongConfig(b []byte) (*kongConfig, error) {
	var c kongConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("declarative config: %w", err)
	}
	if c.FormatVersion != "3.0" {
		return nil, fmt.Errorf("declarative config: _format_version is %q; this stand-in reads 3.0", c.FormatVersion)
	}
	for i := range c.Services {
		s := &c.Services[i]
		if s.Protocol == "" {
			s.Protocol = "http"
		}
		if s.Port == 0 {
			s.Port = 80
		}
		if s.Retries == nil {
			five := 5
			s.Retries = &five
		}
		if s.ConnectTimeout == 0 {
			s.ConnectTimeout = 60000
		}
		if s.ReadTimeout == 0 {
			s.ReadTimeout = 60000
		}
		for j := range s.Routes {
			r := &s.Routes[j]
			if r.StripPath == nil {
				t := true
				r.StripPath = &t
			}
			if len(r.Protocols) == 0 {
				r.Protocols = []string{"http", "https"}
			}
			if r.HTTPSRedirectStatusCode == 0 {
				r.HTTPSRedirectStatusCode = 426
			}
			if len(r.Paths) == 0 && len(r.Hosts) == 0 && len(r.Methods) == 0 && len(r.Headers) == 0 {
				return nil, fmt.Errorf("declarative config: route %q: set at least one of paths, hosts, methods, headers", r.Name)
			}
		}
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if u.Algorithm == "" {
			u.Algorithm = "round-robin"
		}
		if u.Algorithm != "round-robin" {
			return nil, fmt.Errorf("declarative config: upstream %q: algorithm %s; this stand-in balances round-robin only", u.Name, u.Algorithm)
		}
		for j := range u.Targets {
			if u.Targets[j].Weight == nil {
				w := 100
				u.Targets[j].Weight = &w
			}
		}
		if u.Healthchecks.Active.HTTPPath == "" {
			u.Healthchecks.Active.HTTPPath = "/"
		}
		if u.Healthchecks.Active.Timeout == 0 {
			u.Healthchecks.Active.Timeout = 1
		}
	}
	return &c, nil
}
