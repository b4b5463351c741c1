package monitoring

import (
	"encoding/json"
	"fmt"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// DatasourceUID is the provisioned Prometheus datasource's uid; dashboards use it.
const DatasourceUID = "sitectl-prometheus"

// GrafanaDatasources provisions the hub's Prometheus as the default datasource.
func GrafanaDatasources(s Settings) []byte {
	return []byte(fmt.Sprintf(`# Grafana datasource provisioning, rendered by sitectl; do not edit.
apiVersion: 1
datasources:
  - name: Prometheus
    uid: %s
    type: prometheus
    access: proxy
    url: http://prometheus:%d
    isDefault: true
    editable: false
    jsonData:
      timeInterval: %s
`, DatasourceUID, targets.PrometheusPort, s.ScrapeInterval))
}

// DashboardsDir is where the dashboards are mounted in the Grafana container.
const DashboardsDir = "/etc/grafana/dashboards"

// GrafanaDashboardProvider provisions the dashboards in DashboardsDir.
func GrafanaDashboardProvider() []byte {
	return []byte(`# Grafana dashboard provisioning, rendered by sitectl; do not edit.
apiVersion: 1
providers:
  - name: sitectl
    folder: Sites
    type: file
    disableDeletion: true
    allowUiUpdates: false
    updateIntervalSeconds: 60
    options:
      path: ` + DashboardsDir + `
`)
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	GridPos    map[string]int `json:"gridPos"`
	Datasource map[string]any `json:"datasource"`
	Targets    []panelTarget  `json:"targets"`
	FieldCfg   map[string]any `json:"fieldConfig"`
}

type panelTarget struct {
	RefID        string         `json:"refId"`
	Expr         string         `json:"expr"`
	LegendFormat string         `json:"legendFormat"`
	Datasource   map[string]any `json:"datasource"`
}

// Dashboard is one site's Grafana dashboard: targets up, node CPU and memory,
// running tasks per service, Kong traffic/5xx/p95, replication slot lag and WAL.
func Dashboard(site *sites.Site) ([]byte, error) {
	sel := fmt.Sprintf(`site=%q`, site.Name)
	ds := map[string]any{"type": "prometheus", "uid": DatasourceUID}
	type q struct{ expr, legend string }
	specs := []struct {
		title, unit string
		qs          []q
	}{
		{"Targets up (0 everywhere = tunnel down)", "none", []q{{fmt.Sprintf(`up{%s}`, sel), "{{job}} {{node}}"}}},
		{"Tasks running vs desired", "none", []q{
			{fmt.Sprintf(`sitectl:service_running_replicas{%s}`, sel), "{{service}} running"},
			{fmt.Sprintf(`sitectl:service_desired_replicas{%s}`, sel), "{{service}} desired"}}},
		{"Node CPU busy", "percentunit", []q{{fmt.Sprintf(`1 - avg by (node) (rate(node_cpu_seconds_total{mode="idle",%s}[5m]))`, sel), "{{node}}"}}},
		{"Node memory available", "bytes", []q{{fmt.Sprintf(`node_memory_MemAvailable_bytes{%s}`, sel), "{{node}}"}}},
		{"Kong requests by status", "reqps", []q{{fmt.Sprintf(`sum by (code) (rate(kong_http_requests_total{%s}[5m]))`, sel), "{{code}}"}}},
		{"Kong p95 latency", "ms", []q{{fmt.Sprintf(`histogram_quantile(0.95, sum by (le) (rate(kong_request_latency_ms_bucket{%s}[5m])))`, sel), "p95"}}},
		{"Replication slot lag", "bytes", []q{{fmt.Sprintf(`sitectl_slots_lag_bytes{%s}`, sel), "{{slot_name}}"}}},
		{"Replication slot retained WAL", "bytes", []q{{fmt.Sprintf(`sitectl_slots_retained_bytes{%s}`, sel), "{{slot_name}}"}}},
	}
	var panels []panel
	for i, sp := range specs {
		p := panel{ID: i + 1, Type: "timeseries", Title: sp.title, Datasource: ds,
			GridPos:  map[string]int{"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
			FieldCfg: map[string]any{"defaults": map[string]any{"unit": sp.unit}, "overrides": []any{}}}
		for j, qq := range sp.qs {
			p.Targets = append(p.Targets, panelTarget{RefID: string(rune('A' + j)), Expr: qq.expr, LegendFormat: qq.legend, Datasource: ds})
		}
		panels = append(panels, p)
	}
	d := map[string]any{
		"uid":           "sitectl-" + site.Name,
		"title":         fmt.Sprintf("Site %s (%s)", site.Name, site.Env),
		"tags":          []string{"sitectl", "site-" + site.Name, site.Role},
		"timezone":      "utc",
		"schemaVersion": 39,
		"version":       1,
		"editable":      false,
		"refresh":       "30s",
		"time":          map[string]string{"from": "now-6h", "to": "now"},
		"panels":        panels,
		// Required by Grafana's dashboard schema (TestDashboardsMatchGrafanaSchema).
		"templating":  map[string]any{"list": []any{}},
		"annotations": map[string]any{"list": []any{}},
	}
	return json.MarshalIndent(d, "", "  ")
}
