package monitoring_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	composetypes "github.com/docker/cli/cli/compose/types"
	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/stacks"
	// Every registered stack, as the CLI sees them: desired-replica rules cover them all.
	_ "github.com/sitectl/sitectl/stacks/all"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestRenderGolden renders monitoring for every site and environment through the
// deploy engine's conversion, and compares every generated file with its golden.
func TestRenderGolden(t *testing.T) {
	stacktest.RenderEach(t, monitoring.Stack{}, func(t *testing.T, in stacks.Input, _ stacks.Rendered, cfg *composetypes.Config, d *stacks.Desired) {
		var names []string
		for _, svc := range cfg.Services {
			names = append(names, svc.Name)
			for _, p := range svc.Ports {
				if svc.Name != "prometheus" && svc.Name != "grafana" && svc.Name != "alertmanager" && p.Mode != "host" {
					t.Errorf("%s publishes %d in %s mode; exporters are scraped per node (host)", svc.Name, p.Published, p.Mode)
				}
			}
		}
		sort.Strings(names)
		want := "cadvisor,node-exporter,postgres-exporter"
		if in.Site.IsHub() {
			want = "alertmanager,cadvisor,grafana,node-exporter,postgres-exporter,prometheus"
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("services %s, want %s", got, want)
		}
		if len(d.Services) != len(names) {
			t.Errorf("converted %d services, want %d", len(d.Services), len(names))
		}
	})
}

func hubFiles(t *testing.T, env string) map[string][]byte {
	t.Helper()
	topo := stacktest.Load(t, env)
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.HubSite()})
	if err != nil {
		t.Fatal(err)
	}
	return r.Files
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus provides /usr/bin/promtool): rules and config not checked")
	}
	return p
}

func writeAll(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPromtoolCheck runs `promtool check config` (which also checks the rule file it
// names) and `promtool check rules --lint-fatal` on the hub's files for every
// environment: a lint finding (such as a duplicate rule) fails the test.
func TestPromtoolCheck(t *testing.T) {
	pt := promtool(t)
	for _, env := range stacktest.Envs {
		dir := writeAll(t, hubFiles(t, env))
		for _, args := range [][]string{
			{"check", "config", filepath.Join(dir, "prometheus.yml")},
			{"check", "rules", "--lint-fatal", filepath.Join(dir, monitoring.RulesFile)},
		} {
			out, err := exec.Command(pt, args...).CombinedOutput()
			if err != nil {
				t.Errorf("%s: promtool %s: %v\n%s", env, strings.Join(args, " "), err, out)
			}
		}
	}
	// And promtool must be able to fail: a broken expression is refused.
	files := hubFiles(t, "dev")
	files[monitoring.RulesFile] = []byte(strings.Replace(string(files[monitoring.RulesFile]), "max by (site)", "max by (site", 1))
	dir := writeAll(t, files)
	if out, err := exec.Command(pt, "check", "rules", filepath.Join(dir, monitoring.RulesFile)).CombinedOutput(); err == nil {
		t.Errorf("promtool accepted a broken rule file:\n%s", out)
	}
	// And lint is fatal: a rule repeated with the same name and labels is refused.
	files = hubFiles(t, "dev")
	var rf struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(files[monitoring.RulesFile], &rf); err != nil || len(rf.Groups) == 0 || len(rf.Groups[0].Rules) == 0 {
		t.Fatalf("rule file has no rule to repeat (%v)", err)
	}
	rf.Groups[0].Rules = append(rf.Groups[0].Rules, rf.Groups[0].Rules[0])
	dup, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	files[monitoring.RulesFile] = dup
	dir = writeAll(t, files)
	out, err := exec.Command(pt, "check", "rules", "--lint-fatal", filepath.Join(dir, monitoring.RulesFile)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "duplicate rule") {
		t.Errorf("promtool --lint-fatal accepted a rule file with a duplicate rule (%v):\n%s", err, out)
	}
}

// TestAlertsFire runs `promtool test rules` with series that describe the failures:
// every douala target down (a cut tunnel) fires TunnelDown for douala-cloud within
// its `for:`; a missing task, a lagging slot, a slot near max_slot_wal_keep_size,
// Kong 5xx and slow Kong fire their alerts; healthy series fire nothing.
func TestAlertsFire(t *testing.T) {
	pt := promtool(t)
	files := hubFiles(t, "production")
	topo := stacktest.Load(t, "production")
	// One exporter of each douala node, down from the start (the tunnel is cut).
	var series []map[string]string
	for _, n := range topo.Site("douala").Nodes {
		series = append(series,
			map[string]string{"series": `up{job="node",site="douala",node="` + n.Name + `"}`, "values": "0x10"},
			map[string]string{"series": `up{job="cadvisor",site="douala",node="` + n.Name + `"}`, "values": "0x10"})
	}
	series = append(series,
		map[string]string{"series": `up{job="node",site="yaounde",node="yaounde-node1"}`, "values": "1x10"},
		map[string]string{"series": `up{job="cadvisor",site="yaounde",node="yaounde-node1"}`, "values": "1x10"},
		// cloud: a logical slot 100 MB behind and retaining 1.8 GB of its 2 GB limit.
		map[string]string{"series": `sitectl_slots_lag_bytes{site="cloud",slot_name="sub_douala_from_cloud",slot_type="logical"}`, "values": "100000000x10"},
		map[string]string{"series": `sitectl_slots_retained_bytes{site="cloud",slot_name="sub_douala_from_cloud",slot_type="logical"}`, "values": "1800000000x10"},
		// yaounde's Kong: 10% 5xx, all requests slower than 1 s.
		map[string]string{"series": `kong_http_requests_total{site="yaounde",code="200"}`, "values": "0+90x10"},
		map[string]string{"series": `kong_http_requests_total{site="yaounde",code="502"}`, "values": "0+10x10"},
		map[string]string{"series": `kong_request_latency_ms_bucket{site="yaounde",le="500"}`, "values": "0x10"},
		map[string]string{"series": `kong_request_latency_ms_bucket{site="yaounde",le="2000"}`, "values": "0+100x10"},
		map[string]string{"series": `kong_request_latency_ms_bucket{site="yaounde",le="+Inf"}`, "values": "0+100x10"},
	)
	// Every desired task runs, except Kong at yaounde (desired 1 on its one node).
	desired, _, err := monitoring.DesiredReplicas(topo)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range desired {
		if d.Site == "yaounde" && d.Service == "kong_kong" {
			continue
		}
		for i := 0; i < d.Replicas; i++ {
			series = append(series, map[string]string{"series": fmt.Sprintf(`container_start_time_seconds{site=%q,container_label_com_docker_swarm_service_name=%q,id="%d"}`, d.Site, d.Service, i), "values": "1x10"})
		}
	}
	for _, n := range topo.Site("cloud").Nodes {
		series = append(series, map[string]string{"series": `up{job="cadvisor",site="cloud",node="` + n.Name + `"}`, "values": "1x10"})
	}
	type alert struct {
		ExpLabels map[string]string `yaml:"exp_labels"`
	}
	type check struct {
		EvalTime  string  `yaml:"eval_time"`
		AlertName string  `yaml:"alertname"`
		ExpAlerts []alert `yaml:"exp_alerts"`
	}
	var checks []check
	add := func(at, name string, labels ...map[string]string) {
		c := check{EvalTime: at, AlertName: name}
		for _, l := range labels {
			c.ExpAlerts = append(c.ExpAlerts, alert{ExpLabels: l})
		}
		checks = append(checks, c)
	}
	// TunnelDown has for: 1m: not yet at 30s, firing at 2m; yaounde's tunnel is fine.
	add("30s", monitoring.AlertTunnelDown)
	add("2m", monitoring.AlertTunnelDown, map[string]string{"severity": "critical", "link": "douala-cloud", "site": "douala"})
	add("3m", monitoring.AlertReplicasBelow, map[string]string{"severity": "warning", "site": "yaounde", "service": "kong_kong"})
	add("6m", monitoring.AlertReplicationLag, map[string]string{"severity": "warning", "site": "cloud", "slot_name": "sub_douala_from_cloud", "slot_type": "logical"})
	add("2m", monitoring.AlertSlotWAL, map[string]string{"severity": "critical", "site": "cloud", "slot_name": "sub_douala_from_cloud", "slot_type": "logical"})
	add("10m", monitoring.AlertKong5xx, map[string]string{"severity": "warning", "site": "yaounde"})
	add("10m", monitoring.AlertKongLatency, map[string]string{"severity": "warning", "site": "yaounde"})
	test := map[string]any{
		"rule_files":          []string{monitoring.RulesFile},
		"evaluation_interval": "15s",
		"tests": []any{map[string]any{
			"interval":        "1m",
			"input_series":    series,
			"alert_rule_test": checks,
		}},
	}
	b, err := yaml.Marshal(test)
	if err != nil {
		t.Fatal(err)
	}
	files["alerts_test.yml"] = b
	// This test is about when alerts fire and with which labels: drop the
	// annotations, which promtool would otherwise compare word for word.
	var rf map[string][]map[string]any
	if err := yaml.Unmarshal(files[monitoring.RulesFile], &rf); err != nil {
		t.Fatal(err)
	}
	for _, g := range rf["groups"] {
		for _, r := range g["rules"].([]any) {
			delete(r.(map[string]any), "annotations")
		}
	}
	if files[monitoring.RulesFile], err = yaml.Marshal(rf); err != nil {
		t.Fatal(err)
	}
	dir := writeAll(t, files)
	cmd := exec.Command(pt, "test", "rules", "alerts_test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestTargets: Prometheus scrapes every monitored site's nodes at their LAN
// addresses, Kong nodes at the status port, the postgres-exporter node.
func TestTargets(t *testing.T) {
	topo := stacktest.Load(t, "production")
	var p struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string
				Labels  map[string]string
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(hubFiles(t, "production")["prometheus.yml"], &p); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sc := range p.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				got[sc.JobName+" "+st.Labels["site"]+" "+tg] = true
			}
		}
	}
	for _, s := range topo.Sites {
		for _, n := range s.Nodes {
			for _, want := range []string{"node " + s.Name + " " + n.Address + ":9100", "cadvisor " + s.Name + " " + n.Address + ":8088"} {
				if !got[want] {
					t.Errorf("missing target %s", want)
				}
			}
		}
		kn, err := kong.Nodes(topo, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range kn {
			if !got["kong "+s.Name+" "+n.Address+":8100"] {
				t.Errorf("missing kong target %s at %s", n.Address, s.Name)
			}
		}
		if pg := monitoring.PostgresExporterNode(s); !got["postgres "+s.Name+" "+pg.Address+":9187"] || pg.Address != s.Postgres.Host {
			t.Errorf("postgres exporter of %s: node %s, want the database's node %s", s.Name, pg.Address, s.Postgres.Host)
		}
	}
	if got["kong douala 10.10.0.12:8100"] {
		t.Error("douala's db node runs no Kong (role != db) but is a kong target")
	}
}

// TestDashboards: one parseable dashboard per site, every query scoped to it.
func TestDashboards(t *testing.T) {
	topo := stacktest.Load(t, "dev")
	files := hubFiles(t, "dev")
	for _, s := range topo.Sites {
		var d struct {
			UID    string
			Panels []struct {
				Targets []struct{ Expr string }
			}
		}
		if err := json.Unmarshal(files["dashboard-"+s.Name+".json"], &d); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if d.UID != "sitectl-"+s.Name || len(d.Panels) < 6 {
			t.Errorf("%s: uid %s, %d panels", s.Name, d.UID, len(d.Panels))
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Expr, `site="`+s.Name+`"`) {
					t.Errorf("%s: query %s is not scoped to the site", s.Name, tg.Expr)
				}
			}
		}
	}
	if !strings.Contains(string(files["grafana-datasources.yml"]), "url: http://prometheus:9090") {
		t.Error("datasource does not point at the stack's Prometheus")
	}
}

func TestPGSize(t *testing.T) {
	for in, want := range map[string]int64{"2GB": 2 << 30, "512MB": 512 << 20, "1024kB": 1 << 20, "64": 64 << 20, "-1": -1, "": -1, "1TB": 1 << 40} {
		got, err := monitoring.PGSize(in)
		if err != nil || got != want {
			t.Errorf("PGSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := monitoring.PGSize("lots"); err == nil {
		t.Error("PGSize(lots) accepted")
	}
}

// BenchmarkRenderHub renders the hub's monitoring stack: prometheus.yml, the rules
// (which render every registered stack of every site for the desired replica
// counts), Grafana provisioning and dashboards.
func BenchmarkRenderHub(b *testing.B) {
	topo := stacktest.Load(b, "production")
	in := stacks.Input{Topo: topo, Site: topo.HubSite()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (monitoring.Stack{}).Render(in); err != nil {
			b.Fatal(err)
		}
	}
}
