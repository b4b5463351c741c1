package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts/amtest"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// statusArgs reads douala, whose engine does not answer (one problem: the site
// could not be read), and the alerts of the Alertmanager at url.
func statusArgs(dir, url string, more ...string) []string {
	return append([]string{"--config-dir", dir, "--env", "dev", "status", "--site", "douala", "--alertmanager", url,
		"--set", "douala:engine.host=tcp://127.0.0.1:1", "--set", "douala:engine.tls_verify=false"}, more...)
}

// `sitectl status` shows each site's alerts from a real Alertmanager running the
// hub's rendered configuration: firing ones and, marked, the ones a TunnelDown
// inhibits; they are shown, not judged (the only problem is the unreadable engine).
func TestStatusShowsAlerts(t *testing.T) {
	cfg, err := monitoring.AlertmanagerConfig(stacktest.Load(t, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	url := amtest.Start(t, cfg)
	amtest.Post(t, url,
		map[string]string{"alertname": "TunnelDown", "site": "douala", "severity": "critical"},
		map[string]string{"alertname": "SubscriptionSilent", "site": "douala", "subname": "sitectl_cloud_to_douala", "severity": "warning"},
		map[string]string{"alertname": "TunnelDown", "site": "yaounde", "severity": "critical"})
	dir := exampleConfig(t, nil)
	out, errOut, err := run(t, []string{}, statusArgs(dir, url)...)
	if exitCode(err) != 1 || lastLine(out) != "✗ 1 problem(s): douala could not be read" {
		t.Fatalf("err %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	for _, want := range []string{"ALERT", "TunnelDown", "firing", "TunnelDown at douala", "SubscriptionSilent", "inhibited"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "yaounde") {
		t.Errorf("status --site douala shows yaounde's alerts:\n%s", out)
	}

	out, _, _ = run(t, []string{}, statusArgs(dir, url, "-o", "json")...)
	var doc []deploy.SiteStatus
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc) != 1 || len(doc[0].Alerts) != 2 || doc[0].Alerts[0].Name != "SubscriptionSilent" || doc[0].Alerts[0].State != "suppressed" ||
		doc[0].Alerts[1].Name != "TunnelDown" || !doc[0].Alerts[1].Firing() {
		t.Errorf("json alerts: %+v", doc)
	}
}

// Alertmanager that cannot be reached fails `status` (exit 1) and the last line
// names it.
func TestStatusAlertmanagerUnreachable(t *testing.T) {
	url := fmt.Sprintf("http://127.0.0.1:%d", amtest.FreePort(t))
	dir := exampleConfig(t, nil)
	out, errOut, err := run(t, []string{}, statusArgs(dir, url)...)
	want := "✗ 2 problem(s): douala could not be read; alertmanager at " + url + " cannot be reached"
	if exitCode(err) != 1 || !strings.HasPrefix(lastLine(out), want) || !strings.Contains(out, "  alerts: ✗ alertmanager at "+url) {
		t.Fatalf("want last line %q...\nerr %v\nstdout:\n%s\nstderr:\n%s", want, err, out, errOut)
	}
}
