package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts/amtest"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// process runs a command until the test ends (or stop is called).
type process struct {
	cmd  *exec.Cmd
	log  strings.Builder
	once sync.Once
}

func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, nil, name, args...)
}

// startProcessEnv starts name with env added to this process's environment.
func startProcessEnv(t *testing.T, env []string, name string, args ...string) *process {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (hack/install-deps.sh installs it)", name)
	}
	p := &process{cmd: exec.Command(bin, args...)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.log.String())
		}
	})
	return p
}

func (p *process) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
}

// hookRecorder records Alertmanager's webhook posts with their arrival time.
type hookRecorder struct {
	mu  sync.Mutex
	got []struct {
		at     time.Time
		status string
		labels map[string]string
	}
}

func (h *hookRecorder) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	var m struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if json.NewDecoder(r.Body).Decode(&m) != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range m.Alerts {
		h.got = append(h.got, struct {
			at     time.Time
			status string
			labels map[string]string
		}{time.Now(), a.Status, a.Labels})
	}
}

func (h *hookRecorder) wait(t *testing.T, alertname, site, status string, after time.Time, limit time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		h.mu.Lock()
		for _, g := range h.got {
			if !g.at.Before(after) && g.status == status && g.labels["alertname"] == alertname && g.labels["site"] == site {
				h.mu.Unlock()
				return g.at
			}
		}
		h.mu.Unlock()
	}
	t.Fatalf("no %s %s{site=%s} at the webhook within %s", status, alertname, site, limit)
	return time.Time{}
}

// TestAlertingPathRealProcesses runs the hub's rendered prometheus.yml, rules and
// alertmanager.yml with real processes on loopback: Debian's Prometheus scrapes one
// real node-exporter per site (every target of a site is rewritten to its
// exporter's loopback port, and the Alertmanager target to the real Alertmanager);
// stopping douala's exporter (what the hub sees when the tunnel is cut) brings
// TunnelDown{site=douala} to a webhook receiver through Alertmanager, and starting
// it again resolves it. It logs both delays.
func TestAlertingPathRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus, Alertmanager and node-exporters for ~20 s: skipped under -short")
	}
	topo := stacktest.Load(t, "dev", "values.monitoring.scrape_interval=1s", "values.monitoring.evaluation_interval=1s",
		"values.monitoring.alerts.tunnel_down_for=3s")
	hook := &hookRecorder{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	hub := topo.HubSite()
	hub.Alerting = sites.Alerting{Receiver: "ops", GroupWait: sites.Duration(time.Second), GroupInterval: sites.Duration(time.Second),
		Receivers: []sites.AlertReceiver{{Name: "ops", Webhooks: []sites.AlertWebhook{{URL: srv.URL}}}}}
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: hub})
	if err != nil {
		t.Fatal(err)
	}
	amURL := amtest.Start(t, r.Files[monitoring.AlertmanagerFile])

	ports := map[string]int{}
	exporters := map[string]*process{}
	startExporter := func(site string) {
		exporters[site] = startProcess(t, "prometheus-node-exporter", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", ports[site]),
			"--collector.disable-defaults", "--collector.cpu", "--collector.loadavg")
	}
	for _, s := range topo.Sites {
		ports[s.Name] = amtest.FreePort(t)
		startExporter(s.Name)
	}
	// prometheus.yml: targets of each site to its exporter, Alertmanager to the real one.
	var cfg map[string]any
	if err := yaml.Unmarshal(r.Files["prometheus.yml"], &cfg); err != nil {
		t.Fatal(err)
	}
	for _, sc := range cfg["scrape_configs"].([]any) {
		for _, st := range sc.(map[string]any)["static_configs"].([]any) {
			m := st.(map[string]any)
			site := m["labels"].(map[string]any)["site"].(string)
			m["targets"] = []string{fmt.Sprintf("127.0.0.1:%d", ports[site])}
		}
		delete(sc.(map[string]any), "metrics_path")
	}
	am := cfg["alerting"].(map[string]any)["alertmanagers"].([]any)[0].(map[string]any)["static_configs"].([]any)[0].(map[string]any)
	if fmt.Sprint(am["targets"]) != "[monitoring_alertmanager:9093]" {
		t.Fatalf("prometheus.yml sends alerts to %v, want monitoring_alertmanager:9093", am["targets"])
	}
	am["targets"] = []string{strings.TrimPrefix(amURL, "http://")}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"prometheus.yml": b, monitoring.RulesFile: r.Files[monitoring.RulesFile]} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	promAddr := fmt.Sprintf("127.0.0.1:%d", amtest.FreePort(t))
	startProcess(t, "prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	query := func(q string) map[string]float64 {
		out := map[string]float64{}
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return out
		}
		defer func() { _ = resp.Body.Close() }()
		var res struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&res)
		for _, x := range res.Data.Result {
			var v float64
			_, _ = fmt.Sscan(fmt.Sprint(x.Value[1]), &v) // not a number: 0
			out[x.Metric["site"]] = v
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		got := query(`count by (site) (node_exporter_build_info)`)
		if len(got) == len(topo.Sites) {
			t.Logf("node_exporter_build_info per site: %v", got)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Prometheus has node_exporter_build_info for %v, want every site", got)
		}
		time.Sleep(200 * time.Millisecond)
	}

	cut := time.Now()
	exporters["douala"].stop()
	fired := hook.wait(t, monitoring.AlertTunnelDown, "douala", "firing", cut, 45*time.Second)
	t.Logf("douala unreachable: TunnelDown at the webhook after %s (for: 3s, scrape/evaluation 1s, group_wait 1s)", fired.Sub(cut).Round(100*time.Millisecond))
	heal := time.Now()
	startExporter("douala")
	resolved := hook.wait(t, monitoring.AlertTunnelDown, "douala", "resolved", heal, 45*time.Second)
	t.Logf("douala back: TunnelDown resolved at the webhook after %s (group_interval 1s)", resolved.Sub(heal).Round(100*time.Millisecond))
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for _, g := range hook.got {
		if g.labels["alertname"] == monitoring.AlertTunnelDown && g.labels["site"] != "douala" {
			t.Errorf("TunnelDown for %s, though only douala's exporter stopped", g.labels["site"])
		}
	}
}
