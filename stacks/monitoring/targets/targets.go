// Package targets says where the services of the kong, elk and monitoring stacks
// are reachable from other sites: which nodes of a site run them (placement
// constraints evaluated against the topology's node labels) and on which published
// ports. Prometheus scrapes these addresses, Logstash ships to them and Kong routes
// to them, over the tunnels (overlays never span sites: docs/design.md decision 1).
package targets

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// Published ports of the exporters and endpoints other sites reach. Exporter ports
// are always published in host mode (one task per node, scraped per node).
const (
	NodeExporterPort     = 9100
	CAdvisorPort         = 8088
	PostgresExporterPort = 9187
	KongStatusPort       = 8100
	ElasticsearchPort    = 9200
	KibanaPort           = 5601
	LogstashAPIPort      = 9600
	LogstashGELFPort     = 12201
	LogstashTCPPort      = 5000
	PrometheusPort       = 9090
	GrafanaPort          = 3000
	AlertmanagerPort     = 9093
)

// Matching returns the site's nodes a service with these placement constraints can
// run on. It understands the constraints the stacks use: node.labels.K == V,
// node.labels.K != V, node.hostname == / != NAME, node.role == / != manager|worker.
func Matching(site *sites.Site, constraints []string) ([]sites.Node, error) {
	type cond struct {
		field, value string
		eq           bool
	}
	var conds []cond
	for _, c := range constraints {
		op, eq := "==", true
		if strings.Contains(c, "!=") {
			op, eq = "!=", false
		}
		field, value, ok := strings.Cut(c, op)
		if !ok {
			return nil, fmt.Errorf("placement constraint %q: use FIELD == VALUE or FIELD != VALUE", c)
		}
		field, value = strings.TrimSpace(field), strings.TrimSpace(value)
		if field != "node.hostname" && field != "node.role" && !strings.HasPrefix(field, "node.labels.") {
			return nil, fmt.Errorf("placement constraint %q: sitectl resolves only node.labels.*, node.hostname and node.role", c)
		}
		conds = append(conds, cond{field, value, eq})
	}
	var out []sites.Node
	for _, n := range site.Nodes {
		ok := true
		for _, c := range conds {
			var have string
			switch c.field {
			case "node.hostname":
				have = n.Name
			case "node.role":
				have = n.Role
			default:
				have = n.Labels[strings.TrimPrefix(c.field, "node.labels.")]
			}
			if (have == c.value) != c.eq {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("site %s: no node satisfies placement %s (check the nodes' labels in %s.yaml)", site.Name, strings.Join(constraints, " && "), site.Name)
	}
	return out, nil
}

// Pin picks the one node a stateful singleton (Elasticsearch, Prometheus, Grafana,
// an exporter) runs on: the node holding address when one does, else the first node
// labelled role=<role>, else the first manager. Services pin to it with
// "node.hostname == <name>" (sitectl node names are the engines' hostnames).
func Pin(site *sites.Site, role, address string) sites.Node {
	for _, n := range site.Nodes {
		if address != "" && n.Address == address {
			return n
		}
	}
	for _, n := range site.Nodes {
		if n.Labels["role"] == role {
			return n
		}
	}
	for _, n := range site.Nodes {
		if n.Role == "manager" {
			return n
		}
	}
	return site.Nodes[0]
}

// HostnameConstraint is the placement constraint pinning a service to node n.
func HostnameConstraint(n sites.Node) string { return "node.hostname == " + n.Name }

// Addr joins a host and a port.
func Addr(host string, port int) string { return fmt.Sprintf("%s:%d", host, port) }
