// Package monitoring is the monitoring stack: node-exporter and cAdvisor on every
// node of every site (postgres-exporter next to the database), and at the hub
// Prometheus, scraping every site over the tunnels at static targets computed from
// the topology, with alert rules (replicas, tunnels, replication, Kong) sent to
// Alertmanager (receivers from the hub's alerting config), and Grafana with a
// provisioned datasource and one dashboard per site.
package monitoring

import (
	_ "embed"
	"fmt"
	"net/url"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// Name is the stack's name (its folder under stacks/).
const Name = "monitoring"

var (
	//go:embed compose.yml.tmpl
	composeTemplate []byte
	//go:embed queries.yaml
	exporterQueries []byte
)

func init() { stacks.Register(Stack{}) }

// Stack renders the monitoring stack.
type Stack struct{}

// Name implements stacks.Stack.
func (Stack) Name() string { return Name }

type dashboardFile struct{ Config, File, Target string }

type composeData struct {
	Settings
	Hub, Postgres                                        bool
	PostgresURI, PostgresConstraint, HubConstraint       string
	RulesFile                                            string
	Dashboards                                           []dashboardFile
	NodeExporterPort, CAdvisorPort, PostgresExporterPort int
	PrometheusPort, GrafanaPort, AlertmanagerPort        int
	AlertmanagerFile                                     string
	AlertSecrets                                         []AlertSecret
}

func dashboards(topo *sites.Topology) []dashboardFile {
	var out []dashboardFile
	for _, s := range topo.Sites {
		f := "dashboard-" + s.Name + ".json"
		out = append(out, dashboardFile{Config: "grafana_dashboard_" + s.Name, File: f, Target: DashboardsDir + "/" + f})
	}
	return out
}

// hubSettings returns the hub's settings (Prometheus and the alerts are the hub's).
func hubSettings(topo *sites.Topology, site *sites.Site) (*sites.Site, Settings, error) {
	hub := topo.HubSite()
	if hub == nil || !hub.HasStack(Name) {
		return nil, Settings{}, fmt.Errorf("monitoring at %s: the hub's Prometheus scrapes every site, but the hub does not run the monitoring stack: add monitoring to the hub's stacks or remove it from %s's", site.Name, site.Name)
	}
	s, err := ReadSettings(topo, hub)
	return hub, s, err
}

func composeInput(in stacks.Input) (composeData, error) {
	hub, hs, err := hubSettings(in.Topo, in.Site)
	if err != nil {
		return composeData{}, err
	}
	s, err := ReadSettings(in.Topo, in.Site)
	if err != nil {
		return composeData{}, err
	}
	if in.Site.IsHub() {
		s = hs
	}
	d := composeData{
		Settings: s, Hub: in.Site.IsHub(), Postgres: in.Site.HasStack("postgres"),
		HubConstraint: targets.HostnameConstraint(PrometheusNode(hub)), RulesFile: RulesFile,
		NodeExporterPort: targets.NodeExporterPort, CAdvisorPort: targets.CAdvisorPort,
		PostgresExporterPort: targets.PostgresExporterPort,
		PrometheusPort:       targets.PrometheusPort, GrafanaPort: targets.GrafanaPort,
		AlertmanagerPort: targets.AlertmanagerPort, AlertmanagerFile: AlertmanagerFile,
	}
	if d.Hub {
		d.AlertSecrets = AlertSecrets(in.Site.Alerting)
	}
	if d.Postgres {
		d.PostgresURI = postgresURI(in.Site)
		d.PostgresConstraint = targets.HostnameConstraint(PostgresExporterNode(in.Site))
	}
	if d.Hub && d.Grafana {
		d.Dashboards = dashboards(in.Topo)
		if _, ok := in.Site.Secrets[s.GrafanaPassword]; !ok {
			return d, fmt.Errorf("monitoring at %s: Grafana's admin password comes from the secret %q, which the site does not name: add secrets.%s: {env: VAR} or {file: /path} to %s.yaml or defaults.yaml", in.Site.Name, s.GrafanaPassword, s.GrafanaPassword, in.Site.Name)
		}
	}
	return d, nil
}

// ExporterSSLMode is postgres.sslmode as postgres-exporter's driver (lib/pq) takes
// it: lib/pq knows only disable, require, verify-ca and verify-full, and refuses
// prefer and allow (pg_up stays 0: seen with Debian's 0.11 in the lab). prefer and
// allow become disable: the exporter's connection stays on the site's data overlay;
// set postgres.sslmode to require or verify-* for TLS.
func ExporterSSLMode(mode string) string {
	switch mode {
	case "prefer", "allow":
		return "disable"
	}
	return mode
}

// postgresURI is what postgres-exporter connects to: the postgres stack's service
// on the data network (the site's own database), without credentials.
func postgresURI(s *sites.Site) string {
	port := s.Postgres.Port
	if port == 0 {
		port = 5432
	}
	q := url.Values{}
	if m := ExporterSSLMode(s.Postgres.SSLMode); m != "" {
		q.Set("sslmode", m)
	}
	u := targets.Addr("postgres_db", port) + "/" + s.Postgres.Database
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func renderCompose(in stacks.Input) ([]byte, error) {
	d, err := composeInput(in)
	if err != nil {
		return nil, err
	}
	return stacks.ExecTemplate("monitoring/compose.yml.tmpl", composeTemplate, stacks.TemplateData{
		Site: in.Site, Topo: in.Topo, Env: in.Env(), Stack: Name, Values: stacks.Values(in, Name, nil), Extra: d,
	})
}

// Render implements stacks.Stack.
func (Stack) Render(in stacks.Input) (stacks.Rendered, error) {
	d, err := composeInput(in)
	if err != nil {
		return stacks.Rendered{}, err
	}
	compose, err := renderCompose(in)
	if err != nil {
		return stacks.Rendered{}, err
	}
	files := map[string][]byte{}
	var secrets map[string]sites.SecretRef
	if d.Postgres {
		files["queries.yaml"] = exporterQueries
	}
	if d.Hub {
		prom, err := PrometheusConfig(in.Topo, d.Settings)
		if err != nil {
			return stacks.Rendered{}, err
		}
		rules, err := Rules(in.Topo, d.Settings)
		if err != nil {
			return stacks.Rendered{}, err
		}
		am, err := AlertmanagerConfig(in.Topo)
		if err != nil {
			return stacks.Rendered{}, err
		}
		files["prometheus.yml"], files[RulesFile], files[AlertmanagerFile] = prom, rules, am
		for _, s := range d.AlertSecrets {
			if s.External() == "" {
				if secrets == nil {
					secrets = map[string]sites.SecretRef{}
				}
				secrets[s.Name] = s.Ref
			}
		}
		if d.Grafana {
			files["grafana-datasources.yml"] = GrafanaDatasources(d.Settings)
			files["grafana-dashboards.yml"] = GrafanaDashboardProvider()
			for i, s := range in.Topo.Sites {
				b, err := Dashboard(s)
				if err != nil {
					return stacks.Rendered{}, fmt.Errorf("monitoring: dashboard for %s: %w", s.Name, err)
				}
				files[d.Dashboards[i].File] = b
			}
		}
	}
	return stacks.Rendered{Stack: Name, Compose: compose, Files: files, Secrets: secrets}, nil
}
