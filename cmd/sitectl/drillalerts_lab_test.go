package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts"
)

// TestLabDrillAlerts: on the deployed lab (real node-exporter and postgres-exporter
// from Debian at every site, Prometheus and Alertmanager at the hub, the lab's
// receiver from `lab up`), the hub's Prometheus has every site's real exporter
// series; a partition drill of douala sees TunnelDown{site=douala} reach the
// receiver through Alertmanager during the cut and resolve after the heal (the
// drill fails otherwise), with the bearer token of the Docker secret. It logs the
// figures (cut → TunnelDown at the receiver, heal → resolved) and the monitoring
// stack's memory at the hub.
func TestLabDrillAlerts(t *testing.T) {
	l := labtest.Shared(t)
	cli := func(args ...string) (string, string, error) {
		return run(t, nil, append([]string{"--config-dir", l.ConfigDir, "--env", "lab"}, args...)...)
	}
	if _, stderr, err := cli("deploy", "--all"); err != nil {
		t.Fatalf("deploy --all: %v\n%s", err, stderr)
	}
	hub := l.Topo.HubSite()
	hc := hub.Reach.HTTPClient(5 * time.Second)
	prom := fmt.Sprintf("http://%s:9090", monitoring.PrometheusNode(hub).Address)
	query := func(q string) (map[string]float64, error) {
		resp, err := hc.Get(prom + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return nil, err
		}
		out := map[string]float64{}
		for _, x := range r.Data.Result {
			var v float64
			_, _ = fmt.Sscan(fmt.Sprint(x.Value[1]), &v) // not a number: 0
			out[x.Metric["site"]] = v
		}
		return out, nil
	}
	// Real exporters' own series (a stand-in has none), every site; sitectl's
	// queries.yaml loaded without error; every site up (no TunnelDown left over).
	for _, c := range []struct {
		q        string
		positive bool
	}{
		{`count by (site) (node_exporter_build_info)`, true},
		{`max by (site) (pg_up)`, true},
		{`max by (site) (pg_exporter_user_queries_load_error)`, false},
		{`max by (site) (up)`, true},
		{`count by (site) (ALERTS{alertname="TunnelDown"})`, false},
	} {
		var got map[string]float64
		var err error
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
			got, err = query(c.q)
			ok := err == nil && (len(got) == 3 || (!c.positive && len(got) == 0))
			for _, v := range got {
				ok = ok && (v > 0) == c.positive
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %v (%v), want every site %s", c.q, got, err, map[bool]string{true: "> 0", false: "0 or none"}[c.positive])
			}
		}
		t.Logf("%s: %v", c.q, got)
	}

	stdout, stderr, err := cli("drill", "partition", "--site", "douala", "--duration", "30s", "--writes", "20", "--output", "json")
	var rep drill.Report
	if jerr := json.Unmarshal([]byte(stdout), &rep); jerr != nil {
		t.Fatalf("drill partition: %v\n%s\n%s", err, stderr, stdout)
	}
	if err != nil || !rep.Passed || rep.Alerts == nil || rep.Alerts.Note != "" {
		t.Fatalf("drill partition: %v: %s; alerts %+v; observations %+v\n%s", err, rep.Summary(), rep.Alerts, rep.Observations, stderr)
	}
	var td *drill.AlertTime
	repl := false // a replication alert about douala's flows, at the receiver or held by Alertmanager
	for i, a := range rep.Alerts.Alerts {
		// Inhibited by douala's TunnelDown while it fires (it may be notified once
		// TunnelDown resolves, if it still fires then).
		repl = repl || (a.Alert == monitoring.AlertReplicationLag || a.Alert == monitoring.AlertSubscriptionSilent) && strings.Contains(a.Key, "douala") && a.InhibitedBy
		t.Logf("alert %s via %s (inhibited %v, in Alertmanager from cut+%.1fs): fired cut+%.1fs, resolved heal+%.1fs", a.Name(), a.Via, a.InhibitedBy, secs(a.HeldAfterCut), secs(a.FiredAfterCut), secs(a.ResolvedAfterHeal))
		if a.Alert == monitoring.AlertTunnelDown && a.Site == "douala" && a.Via == "receiver" {
			td = &rep.Alerts.Alerts[i]
		}
		if a.Alert == monitoring.AlertTunnelDown && a.Site != "douala" {
			t.Errorf("TunnelDown for %s, though only douala was partitioned", a.Site)
		}
	}
	if !repl {
		t.Errorf("no replication alert about douala inhibited by its TunnelDown during the cut (lab: replication_lag_bytes 1024, replication_for 20s): %+v", rep.Alerts.Alerts)
	}
	if td == nil || td.FiredAfterCut == nil || td.ResolvedAfterHeal == nil {
		t.Fatalf("no TunnelDown{site=douala} fired and resolved at the receiver: %+v", rep.Alerts)
	}
	t.Logf("FIGURE: cut → TunnelDown at the receiver %.1fs (bound %.0fs); heal → resolved at the receiver %.1fs (bound %.0fs)",
		float64(*td.FiredAfterCut), secs(rep.Alerts.Detect), float64(*td.ResolvedAfterHeal), secs(rep.Alerts.Resolve))

	// Every post carried the token of the Docker secret.
	ns, err := alerts.Receiver{URL: hub.Lab.AlertReceiver, HTTP: hc}.Received(context.Background())
	if err != nil || len(ns) == 0 {
		t.Fatalf("read the receiver: %v (%d posts)", err, len(ns))
	}
	for _, n := range ns {
		if !n.Authorized {
			t.Errorf("a post at %s did not carry the lab's bearer token", n.At.Format(time.RFC3339))
		}
	}

	// The monitoring stack's memory at the hub (docker stats of every hub node).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range hub.Nodes {
		out, err := l.Docker(ctx, n.Name, "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}")
		if err != nil {
			t.Errorf("docker stats at %s: %v", n.Name, err)
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.HasPrefix(line, monitoring.Name+"_") {
				t.Logf("FIGURE: memory at %s: %s", n.Name, line)
			}
		}
	}
}

func secs(s *drill.Seconds) float64 {
	if s == nil {
		return -1
	}
	return float64(*s)
}
