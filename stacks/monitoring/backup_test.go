package monitoring_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// backupLayout is the design's backup layout on production: cloud's Barman backs up
// the spokes (douala every hour, yaounde daily), douala's backs up the hub.
var backupLayout = []string{
	"cloud:stacks=postgres,django-api,kong,elk,monitoring,mongo,backup",
	"douala:stacks=postgres,django-api,kong,elk,monitoring,mongo,backup",
	"douala:backup.server=cloud", "douala:backup.schedule=1h", "yaounde:backup.server=cloud", "cloud:backup.server=douala",
}

func backupHubFiles(t *testing.T) map[string][]byte {
	t.Helper()
	topo := stacktest.Load(t, "production", backupLayout...)
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.HubSite()})
	if err != nil {
		t.Fatal(err)
	}
	return r.Files
}

// TestBackupScrapeAndRules: with the backup stack at cloud and douala, Prometheus
// scrapes each Barman exporter at its database node (honor_labels: the series name
// the backed-up site); the rules have BackupLate and WALStreamingStopped per
// backed-up site (golden of the group); promtool accepts config and rules with lint
// fatal. Without a backed-up site there is no backup job nor group.
func TestBackupScrapeAndRules(t *testing.T) {
	files := backupHubFiles(t)
	var p struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			HonorLabels   bool   `yaml:"honor_labels"`
			StaticConfigs []struct {
				Targets []string
				Labels  map[string]string
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(files["prometheus.yml"], &p); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sc := range p.ScrapeConfigs {
		if sc.JobName != monitoring.JobBackup {
			continue
		}
		if !sc.HonorLabels {
			t.Errorf("job backup without honor_labels: the series would carry the server's site")
		}
		for _, st := range sc.StaticConfigs {
			got = append(got, st.Labels["site"]+" "+strings.Join(st.Targets, ","))
		}
	}
	if want := "cloud 10.30.0.11:9781|douala 10.10.0.12:9781"; strings.Join(got, "|") != want {
		t.Errorf("backup targets %q, want %q", strings.Join(got, "|"), want)
	}
	var rf struct {
		Groups []map[string]any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(files[monitoring.RulesFile], &rf); err != nil {
		t.Fatal(err)
	}
	var group []byte
	for _, g := range rf.Groups {
		if g["name"] == "sitectl-backup" {
			b, err := yaml.Marshal(g)
			if err != nil {
				t.Fatal(err)
			}
			group = b
		}
	}
	if group == nil {
		t.Fatalf("no sitectl-backup rule group:\n%s", files[monitoring.RulesFile])
	}
	golden.Assert(t, "backup/rules.yml", group)
	if pt, err := exec.LookPath("promtool"); err == nil {
		dir := writeAll(t, files)
		for _, args := range [][]string{
			{"check", "config", filepath.Join(dir, "prometheus.yml")},
			{"check", "rules", "--lint-fatal", filepath.Join(dir, monitoring.RulesFile)},
		} {
			if out, err := exec.Command(pt, args...).CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	plain := hubFiles(t, "production")
	if strings.Contains(string(plain[monitoring.RulesFile]), "sitectl-backup") || strings.Contains(string(plain["prometheus.yml"]), "job_name: backup") {
		t.Errorf("no site is backed up in production's example, yet backup rules or a backup job are rendered")
	}
}

// TestBackupAlertsFire runs `promtool test rules` over the backup rules: douala
// (schedule 1h) had its last base backup at time 0 and stopped streaming from the
// start; yaounde has no base backup and no streaming series at all (its exporter
// says nothing); cloud is healthy (a backup every minute, streaming). BackupLate
// fires for yaounde after its `for:` and for douala only once an hour has passed
// plus the `for:`; WALStreamingStopped fires for douala and yaounde after theirs;
// nothing fires for cloud.
func TestBackupAlertsFire(t *testing.T) {
	pt := promtool(t)
	files := backupHubFiles(t)
	series := []map[string]string{
		{"series": `sitectl_backup_base_backups{site="douala"}`, "values": "1x120"},
		{"series": `sitectl_backup_last_base_backup_timestamp_seconds{site="douala"}`, "values": "0x120"},
		{"series": `sitectl_backup_wal_streaming{site="douala"}`, "values": "0x120"},
		{"series": `sitectl_backup_base_backups{site="yaounde"}`, "values": "0x120"},
		{"series": `sitectl_backup_base_backups{site="cloud"}`, "values": "1x120"},
		{"series": `sitectl_backup_last_base_backup_timestamp_seconds{site="cloud"}`, "values": "0+60x120"},
		{"series": `sitectl_backup_wal_streaming{site="cloud"}`, "values": "1x120"},
	}
	type alert struct {
		ExpLabels map[string]string `yaml:"exp_labels"`
	}
	type check struct {
		EvalTime  string  `yaml:"eval_time"`
		AlertName string  `yaml:"alertname"`
		ExpAlerts []alert `yaml:"exp_alerts"`
	}
	late := func(site string) alert {
		return alert{ExpLabels: map[string]string{"severity": "warning", "site": site}}
	}
	stopped := func(site string) alert {
		return alert{ExpLabels: map[string]string{"severity": "critical", "site": site}}
	}
	checks := []check{
		{EvalTime: "5m", AlertName: monitoring.AlertBackupLate},
		{EvalTime: "12m", AlertName: monitoring.AlertBackupLate, ExpAlerts: []alert{late("yaounde")}},
		{EvalTime: "65m", AlertName: monitoring.AlertBackupLate, ExpAlerts: []alert{late("yaounde")}},
		{EvalTime: "75m", AlertName: monitoring.AlertBackupLate, ExpAlerts: []alert{late("douala"), late("yaounde")}},
		{EvalTime: "3m", AlertName: monitoring.AlertWALStreaming},
		{EvalTime: "7m", AlertName: monitoring.AlertWALStreaming, ExpAlerts: []alert{stopped("douala"), stopped("yaounde")}},
	}
	test := map[string]any{
		"rule_files":          []string{monitoring.RulesFile},
		"evaluation_interval": "1m",
		"tests":               []any{map[string]any{"interval": "1m", "input_series": series, "alert_rule_test": checks}},
	}
	b, err := yaml.Marshal(test)
	if err != nil {
		t.Fatal(err)
	}
	files["alerts_test.yml"] = b
	var rf map[string][]map[string]any
	if err := yaml.Unmarshal(files[monitoring.RulesFile], &rf); err != nil {
		t.Fatal(err)
	}
	var keep []map[string]any
	for _, g := range rf["groups"] {
		if g["name"] == "sitectl-backup" {
			for _, r := range g["rules"].([]any) {
				delete(r.(map[string]any), "annotations")
			}
			keep = append(keep, g)
		}
	}
	rf["groups"] = keep
	if files[monitoring.RulesFile], err = yaml.Marshal(rf); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pt, "test", "rules", "alerts_test.yml")
	cmd.Dir = writeAll(t, files)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
