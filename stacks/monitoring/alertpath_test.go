package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// realPath is the hub's rendered prometheus.yml, rules and alertmanager.yml run
// with real processes on loopback: Debian's Prometheus scrapes one real
// node-exporter per site (every target of a site is rewritten to its exporter's
// loopback port, and the Alertmanager target to the real Alertmanager), and
// Alertmanager posts to hook.
type realPath struct {
	t         *testing.T
	topo      *sites.Topology
	hook      *hookRecorder
	ports     map[string]int
	exporters map[string]*process
	amAddr    string
	amArgs    []string
	am        *process
	promAddr  string
}

// startRealPath starts the path; promArgs are added to Prometheus' flags.
func startRealPath(t *testing.T, promArgs ...string) *realPath {
	t.Helper()
	topo := stacktest.Load(t, "dev", "values.monitoring.scrape_interval=1s", "values.monitoring.evaluation_interval=1s",
		"values.monitoring.alerts.tunnel_down_for=3s")
	p := &realPath{t: t, topo: topo, hook: &hookRecorder{}, ports: map[string]int{}, exporters: map[string]*process{}}
	srv := httptest.NewServer(p.hook)
	t.Cleanup(srv.Close)
	hub := topo.HubSite()
	hub.Alerting = sites.Alerting{Receiver: "ops", GroupWait: sites.Duration(time.Second), GroupInterval: sites.Duration(time.Second),
		Receivers: []sites.AlertReceiver{{Name: "ops", Webhooks: []sites.AlertWebhook{{URL: srv.URL}}}}}
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: hub})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	amFile := filepath.Join(dir, monitoring.AlertmanagerFile)
	if err := os.WriteFile(amFile, r.Files[monitoring.AlertmanagerFile], 0o644); err != nil {
		t.Fatal(err)
	}
	p.amAddr = fmt.Sprintf("127.0.0.1:%d", amtest.FreePort(t))
	// Its data dir is kept across a restart, as the alertmanager-data volume is.
	p.amArgs = []string{"--config.file=" + amFile, "--storage.path=" + filepath.Join(dir, "am"), "--web.listen-address=" + p.amAddr, "--cluster.listen-address="}
	p.startAM()
	for _, s := range topo.Sites {
		p.ports[s.Name] = amtest.FreePort(t)
		p.startExporter(s.Name)
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
			m["targets"] = []string{fmt.Sprintf("127.0.0.1:%d", p.ports[site])}
		}
		delete(sc.(map[string]any), "metrics_path")
	}
	am := cfg["alerting"].(map[string]any)["alertmanagers"].([]any)[0].(map[string]any)["static_configs"].([]any)[0].(map[string]any)
	if fmt.Sprint(am["targets"]) != "[monitoring_alertmanager:9093]" {
		t.Fatalf("prometheus.yml sends alerts to %v, want monitoring_alertmanager:9093", am["targets"])
	}
	am["targets"] = []string{p.amAddr}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"prometheus.yml": b, monitoring.RulesFile: r.Files[monitoring.RulesFile]} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.promAddr = fmt.Sprintf("127.0.0.1:%d", amtest.FreePort(t))
	startProcess(t, "prometheus", append([]string{"--config.file=" + filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + p.promAddr}, promArgs...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		got := p.query(`count by (site) (node_exporter_build_info)`)
		if len(got) == len(topo.Sites) {
			t.Logf("node_exporter_build_info per site: %v", got)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Prometheus has node_exporter_build_info for %v, want every site", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return p
}

func (p *realPath) startExporter(site string) {
	p.exporters[site] = startProcess(p.t, "prometheus-node-exporter", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", p.ports[site]),
		"--collector.disable-defaults", "--collector.cpu", "--collector.loadavg")
}

// startAM starts Alertmanager and waits until it is ready.
func (p *realPath) startAM() {
	p.am = startProcess(p.t, "prometheus-alertmanager", p.amArgs...)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + p.amAddr + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("alertmanager did not get ready at %s: %v", p.amAddr, err)
		}
	}
}

// query runs an instant query and returns its values by site.
func (p *realPath) query(q string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + p.promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
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

// notificationErrors is Prometheus' prometheus_notifications_errors_total.
func (p *realPath) notificationErrors() float64 {
	resp, err := http.Get("http://" + p.promAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "prometheus_notifications_errors_total") {
			var v float64
			_, _ = fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

// TestAlertingPathRealProcesses: stopping douala's exporter (what the hub sees when
// the tunnel is cut) brings TunnelDown{site=douala} to a webhook receiver through
// Alertmanager, and starting it again resolves it. It logs both delays.
func TestAlertingPathRealProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus, Alertmanager and node-exporters for ~20 s: skipped under -short")
	}
	p := startRealPath(t)
	cut := time.Now()
	p.exporters["douala"].stop()
	fired := p.hook.wait(t, monitoring.AlertTunnelDown, "douala", "firing", cut, 45*time.Second)
	t.Logf("douala unreachable: TunnelDown at the webhook after %s (for: 3s, scrape/evaluation 1s, group_wait 1s)", fired.Sub(cut).Round(100*time.Millisecond))
	heal := time.Now()
	p.startExporter("douala")
	resolved := p.hook.wait(t, monitoring.AlertTunnelDown, "douala", "resolved", heal, 45*time.Second)
	t.Logf("douala back: TunnelDown resolved at the webhook after %s (group_interval 1s)", resolved.Sub(heal).Round(100*time.Millisecond))
	p.hook.mu.Lock()
	defer p.hook.mu.Unlock()
	for _, g := range p.hook.got {
		if g.labels["alertname"] == monitoring.AlertTunnelDown && g.labels["site"] != "douala" {
			t.Errorf("TunnelDown for %s, though only douala's exporter stopped", g.labels["site"])
		}
	}
}

// resendDelay is Prometheus' --rules.alert.resend-delay in the test (its default,
// which the monitoring stack keeps, is 1m): how often it sends the alerts that
// still fire to Alertmanager again.
const resendDelay = 3 * time.Second

// TestAlertmanagerDownLosesNoAlert: with Alertmanager stopped, TunnelDown fires in
// Prometheus and reaches no receiver; once Alertmanager is started again (same
// data dir), Prometheus sends the firing alert again and the notification arrives.
func TestAlertmanagerDownLosesNoAlert(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus, Alertmanager and node-exporters for ~20 s: skipped under -short")
	}
	p := startRealPath(t, "--rules.alert.resend-delay="+resendDelay.String())
	p.am.stop()
	cut := time.Now()
	p.exporters["douala"].stop()
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if got := p.query(`ALERTS{alertname="TunnelDown", alertstate="firing"}`); got["douala"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("TunnelDown{site=douala} does not fire in Prometheus with Alertmanager down")
		}
	}
	firing := time.Now()
	t.Logf("TunnelDown firing in Prometheus %s after the cut, Alertmanager down", firing.Sub(cut).Round(100*time.Millisecond))
	// Prometheus tried to send it and could not (its own metrics).
	for deadline := time.Now().Add(2 * resendDelay); ; time.Sleep(200 * time.Millisecond) {
		if p.notificationErrors() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Prometheus reports no failed notification while Alertmanager is down")
		}
	}
	p.hook.mu.Lock()
	n := len(p.hook.got)
	p.hook.mu.Unlock()
	if n != 0 {
		t.Fatalf("the receiver got %d alert(s) while Alertmanager was down", n)
	}
	restart := time.Now()
	p.startAM()
	at := p.hook.wait(t, monitoring.AlertTunnelDown, "douala", "firing", restart, 4*resendDelay+10*time.Second)
	t.Logf("Alertmanager back: TunnelDown at the receiver %s after its restart (resend delay %s, group_wait 1s)", at.Sub(restart).Round(100*time.Millisecond), resendDelay)
}
