package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/backup/backuptest"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// backupServerStopped (a subtest of TestLabBackupCLI): the backup server's WAL
// streaming stopped (`barman receive-wal --stop`, what a stopped Barman leaves)
// turns `sitectl backup status` to exit 1 naming WAL streaming; the exporter, run
// against the same real Barman, says Barman answers but WAL does not stream; and
// the hub's rendered rules, fed the exporter's series, fire WALStreamingStopped for
// douala after its `for:` (promtool test rules).
func backupServerStopped(t *testing.T, s *backuptest.Site, cli func(args ...string) (string, string, error)) {
	ctx := context.Background()
	if _, err := s.Runner.Barman(ctx, "receive-wal", "--stop", "douala"); err != nil {
		t.Fatal(err)
	}
	var out string
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		out, _, err = cli("backup", "status", "--site", "douala")
		if exitCode(err) == 1 && strings.Contains(out, "✗ douala: WAL streaming is") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup status 30 s after Barman's streaming stopped: want exit 1 naming WAL streaming, got %v\n%s", err, out)
		}
	}

	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is missing: run hack/install-deps.sh (barman brings it): %v", err)
	}
	prog := filepath.Join(t.TempDir(), "barman-exporter")
	if err := os.WriteFile(prog, backup.ExporterScript, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, prog, "--once", "douala")
	cmd.Env = append(os.Environ(), "BARMAN_CONFIG="+s.BarmanConfig, "PGPASSFILE="+s.PGPassFile)
	metrics, err := cmd.Output()
	if err != nil {
		t.Fatalf("barman-exporter --once: %v", err)
	}
	var series []map[string]string
	for _, line := range strings.Split(string(metrics), "\n") {
		if name, value, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, "sitectl_backup_") && strings.Contains(name, `site="douala"`) {
			series = append(series, map[string]string{"series": name, "values": value + "x10"})
		}
	}
	if !strings.Contains(string(metrics), backup.MetricUp+`{site="douala"} 1`) || !strings.Contains(string(metrics), backup.MetricWALStreaming+`{site="douala"} 0`) {
		t.Fatalf("exporter with Barman's streaming stopped: want up 1 and wal_streaming 0 for douala:\n%s", metrics)
	}
	promtoolFires(t, series)
}

// promtoolFires runs `promtool test rules` over the hub's rendered backup rules
// (douala backed up by cloud) with the given input series: WALStreamingStopped for
// douala not yet at 3m, firing at 7m.
func promtoolFires(t *testing.T, series []map[string]string) {
	t.Helper()
	pt, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is missing: run hack/install-deps.sh (prometheus): %v", err)
	}
	topo := stacktest.Load(t, "production", "cloud:stacks=postgres,django-api,kong,elk,monitoring,mongo,backup", "douala:backup.server=cloud")
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.HubSite()})
	if err != nil {
		t.Fatal(err)
	}
	var rf map[string][]map[string]any
	if err := yaml.Unmarshal(r.Files[monitoring.RulesFile], &rf); err != nil {
		t.Fatal(err)
	}
	var keep []map[string]any
	for _, g := range rf["groups"] {
		if g["name"] == "sitectl-backup" {
			for _, rule := range g["rules"].([]any) {
				delete(rule.(map[string]any), "annotations")
			}
			keep = append(keep, g)
		}
	}
	if len(keep) == 0 {
		t.Fatalf("no sitectl-backup group in the hub's rules:\n%s", r.Files[monitoring.RulesFile])
	}
	rf["groups"] = keep
	rules, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	fires := []any{map[string]any{"exp_labels": map[string]string{"severity": "critical", "site": "douala"}}}
	test, err := yaml.Marshal(map[string]any{
		"rule_files":          []string{monitoring.RulesFile},
		"evaluation_interval": "1m",
		"tests": []any{map[string]any{"interval": "1m", "input_series": series, "alert_rule_test": []any{
			map[string]any{"eval_time": "3m", "alertname": monitoring.AlertWALStreaming},
			map[string]any{"eval_time": "7m", "alertname": monitoring.AlertWALStreaming, "exp_alerts": fires},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{monitoring.RulesFile: rules, "alerts_test.yml": test} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(pt, "test", "rules", "alerts_test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules with the exporter's series: %v\n%s\ninput: %s", err, out, fmt.Sprint(series))
	}
}
