package monitoring

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/sites"
	bkstack "github.com/sitectl/sitectl/stacks/backup"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// Target is one scrape target: a LAN address and host-mode port at a site.
type Target struct {
	Job     string `json:"job"`
	Site    string `json:"site"`
	Node    string `json:"node"`
	Address string `json:"address"`
}

// Jobs of the scrape configuration.
const (
	JobPrometheus = "prometheus"
	JobNode       = "node"
	JobCAdvisor   = "cadvisor"
	JobKong       = "kong"
	JobPostgres   = "postgres"
	JobBackup     = "backup"
)

// Targets lists what the hub's Prometheus scrapes, from the topology alone: at every
// site running the monitoring stack its nodes' node-exporter and cAdvisor, the
// postgres-exporter where the site runs postgres, the Barman exporter where it runs
// the backup stack, and every Kong node's status port
// where the site runs kong. Addresses are site LAN addresses: the hub reaches a
// spoke's through the tunnel, never over an overlay.
func Targets(topo *sites.Topology) ([]Target, error) {
	var out []Target
	for _, s := range topo.Sites {
		if s.HasStack(Name) {
			for _, n := range s.Nodes {
				out = append(out,
					Target{JobNode, s.Name, n.Name, targets.Addr(n.Address, targets.NodeExporterPort)},
					Target{JobCAdvisor, s.Name, n.Name, targets.Addr(n.Address, targets.CAdvisorPort)})
			}
			if s.HasStack("postgres") {
				n := PostgresExporterNode(s)
				out = append(out, Target{JobPostgres, s.Name, n.Name, targets.Addr(n.Address, targets.PostgresExporterPort)})
			}
			if s.HasStack(bkstack.Name) {
				// The Barman exporter: its series carry the backed-up site's label
				// (honor_labels), the target's site is the backup server's.
				n := bkstack.Node(s)
				out = append(out, Target{JobBackup, s.Name, n.Name, targets.Addr(n.Address, backup.ExporterPort)})
			}
		}
		if s.HasStack(kong.Name) {
			nodes, err := kong.Nodes(topo, s)
			if err != nil {
				return nil, fmt.Errorf("monitoring: kong targets at %s: %w", s.Name, err)
			}
			for _, n := range nodes {
				out = append(out, Target{JobKong, s.Name, n.Name, targets.Addr(n.Address, targets.KongStatusPort)})
			}
		}
	}
	for _, a := range topo.Apps {
		if a.MetricsPort == 0 {
			continue
		}
		for _, s := range topo.Sites {
			if _, ok := a.Sites[s.Name]; !ok {
				continue
			}
			for _, n := range s.Nodes {
				out = append(out, Target{AppJob(a.Name), s.Name, n.Name, targets.Addr(n.Address, a.MetricsPublished)})
			}
		}
	}
	return out, nil
}

// AppJob is the scrape job of an operator app's metrics port: every node of every
// site running the app, at the port sitectl publishes it on.
func AppJob(app string) string { return "app-" + app }

// PostgresExporterNode is where a site's postgres-exporter runs (and is scraped):
// the node holding the database (postgres.host), else a db-labelled node.
func PostgresExporterNode(s *sites.Site) sites.Node { return targets.Pin(s, "db", s.Postgres.Host) }

// PrometheusNode is the hub node Prometheus and Grafana are pinned to.
func PrometheusNode(hub *sites.Site) sites.Node { return targets.Pin(hub, "monitor", "") }

type promConfig struct {
	Global struct {
		ScrapeInterval     string            `yaml:"scrape_interval"`
		EvaluationInterval string            `yaml:"evaluation_interval"`
		ScrapeTimeout      string            `yaml:"scrape_timeout"`
		ExternalLabels     map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []staticConfig `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
}

type scrapeConfig struct {
	JobName       string         `yaml:"job_name"`
	HonorLabels   bool           `yaml:"honor_labels,omitempty"`
	MetricsPath   string         `yaml:"metrics_path,omitempty"`
	StaticConfigs []staticConfig `yaml:"static_configs"`
}

type staticConfig struct {
	Targets []string          `yaml:"targets"`
	Labels  map[string]string `yaml:"labels,omitempty"`
}

// RulesFile is the rule file's name, next to prometheus.yml (rule_files are
// resolved relative to the configuration file, in the container and for promtool).
const RulesFile = "sitectl.rules.yml"

// PrometheusConfig renders prometheus.yml for the hub.
func PrometheusConfig(topo *sites.Topology, s Settings) ([]byte, error) {
	ts, err := Targets(topo)
	if err != nil {
		return nil, err
	}
	var c promConfig
	c.Global.ScrapeInterval = s.ScrapeInterval
	c.Global.EvaluationInterval = s.EvaluationInterval
	c.Global.ScrapeTimeout = "10s"
	if d, _ := time.ParseDuration(s.ScrapeInterval); d < 10*time.Second {
		c.Global.ScrapeTimeout = s.ScrapeInterval
	}
	c.Global.ExternalLabels = map[string]string{"environment": topo.Env, "monitor": "sitectl-" + topo.Hub}
	c.RuleFiles = []string{RulesFile}
	// Alertmanager runs beside Prometheus at the hub (same stack, app network),
	// reached by its full service name, as other sites' services are.
	c.Alerting.Alertmanagers = make([]struct {
		StaticConfigs []staticConfig `yaml:"static_configs"`
	}, 1)
	c.Alerting.Alertmanagers[0].StaticConfigs = []staticConfig{{Targets: []string{targets.Addr(Name+"_alertmanager", targets.AlertmanagerPort)}}}
	c.ScrapeConfigs = append(c.ScrapeConfigs, scrapeConfig{JobName: JobPrometheus, StaticConfigs: []staticConfig{{
		Targets: []string{targets.Addr("localhost", targets.PrometheusPort)},
		Labels:  map[string]string{"site": topo.Hub, "node": PrometheusNode(topo.HubSite()).Name},
	}}})
	for _, job := range []string{JobNode, JobCAdvisor, JobKong, JobPostgres, JobBackup} {
		// The Barman exporter labels each series with the site it backs up.
		sc := scrapeConfig{JobName: job, HonorLabels: job == JobBackup}
		for _, t := range ts {
			if t.Job != job {
				continue
			}
			sc.StaticConfigs = append(sc.StaticConfigs, staticConfig{Targets: []string{t.Address}, Labels: map[string]string{"site": t.Site, "node": t.Node}})
		}
		if len(sc.StaticConfigs) > 0 {
			c.ScrapeConfigs = append(c.ScrapeConfigs, sc)
		}
	}
	for _, a := range topo.Apps {
		sc := scrapeConfig{JobName: AppJob(a.Name), MetricsPath: a.MetricsPath}
		for _, t := range ts {
			if t.Job == sc.JobName {
				sc.StaticConfigs = append(sc.StaticConfigs, staticConfig{Targets: []string{t.Address}, Labels: map[string]string{"site": t.Site, "node": t.Node, "app": a.Name}})
			}
		}
		if len(sc.StaticConfigs) > 0 {
			c.ScrapeConfigs = append(c.ScrapeConfigs, sc)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# prometheus.yml for the hub %s (%s), rendered by sitectl from the topology; do not edit.\n", topo.Hub, topo.Env)
	b.WriteString("# Every target is a site LAN address and host-mode port: spokes are scraped through the tunnels.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// sortedSites returns the names of the sites running stack, sorted.
func sortedSites(topo *sites.Topology, stack string) []string {
	var out []string
	for _, s := range topo.Sites {
		if s.HasStack(stack) {
			out = append(out, s.Name)
		}
	}
	sort.Strings(out)
	return out
}
