package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/swarm"
	"github.com/sitectl/sitectl/tunnels"
	"github.com/sitectl/sitectl/tunnels/firewall"
)

// receiverPort is where the lab's webhook receiver listens, on the hub node.
const receiverPort = 19093

// notification is one webhook post Alertmanager made, as the receiver got it.
type notification struct {
	At     time.Time
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// labReceiver records Alertmanager's webhook posts.
type labReceiver struct {
	mu   sync.Mutex
	got  []notification
	auth []string
}

func (r *labReceiver) ServeHTTP(_ http.ResponseWriter, req *http.Request) {
	var n notification
	err := json.NewDecoder(req.Body).Decode(&n)
	n.At = time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.got = append(r.got, n)
	}
	r.auth = append(r.auth, req.Header.Get("Authorization"))
}

// first returns when the receiver first got alertname for site with status.
func (r *labReceiver) first(alertname, site, status string, after time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.got {
		if n.At.Before(after) {
			continue
		}
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == alertname && a.Labels["site"] == site && a.Status == status {
				return n.At, true
			}
		}
	}
	return time.Time{}, false
}

// TestLabAlerting deploys postgres and monitoring to the three lab sites (real
// node-exporter and postgres-exporter from Debian on every site, Prometheus and
// Alertmanager at the hub), checks the hub's Prometheus has the real exporters'
// series of every site, then cuts the douala-cloud tunnel: TunnelDown{site=douala}
// must reach a webhook receiver through Alertmanager (with the bearer token from
// the Docker secret), and resolve after the heal. It logs the detection and
// resolution times and the monitoring stack's memory at the hub.
func TestLabAlerting(t *testing.T) {
	labtest.Skip(t)
	if err := lab.Preflight(); err != nil {
		t.Skipf("lab test: %v", err)
	}
	src, err := labtest.RepoSites()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "sites")
	if err := labtest.CopyConfig(src, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"defaults.yaml", "douala.yaml", "yaounde.yaml", "cloud.yaml"} {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = regexp.MustCompile(`(?m)^stacks: .*$`).ReplaceAll(b, []byte("stacks: [postgres, monitoring]"))
		if f == "cloud.yaml" {
			// The lab's receiver: a webhook on the hub node, with a bearer token.
			b = append(b, []byte(fmt.Sprintf(`alerting:
  receiver: lab
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
  receivers:
    - name: lab
      webhooks:
        - url: http://10.30.0.11:%d/hook
          token: {file: %s}
`, receiverPort, filepath.Join(dir, "hook-token")))...)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "hook-token"), []byte("lab-hook-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	opts := lab.Options{ConfigDir: dir, Prefix: labPrefix, StateDir: lab.DefaultStateDir + "-" + labPrefix}
	_, _ = lab.Down(ctx, opts) // a lab left by a killed run
	t.Cleanup(func() {
		if _, err := lab.Down(context.Background(), opts); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	start := time.Now()
	if _, err := lab.Up(ctx, opts); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Logf("lab up: %s", time.Since(start).Round(time.Millisecond))
	topo, err := sites.Load(sites.Options{Dir: dir, Env: lab.EnvName, Environ: []string{}, Set: labSettings})
	if err != nil {
		t.Fatal(err)
	}
	labreach.Install(topo)
	hub := topo.HubSite()
	node := monitoring.PrometheusNode(hub)
	if node.Address != "10.30.0.11" {
		t.Fatalf("the hub's monitor node is %s, the receiver URL says 10.30.0.11", node.Address)
	}
	nodeNS, err := lab.ResolveNamespace(opts, hub.Name+"/"+node.Name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := netns.Listen(nodeNS, "tcp", fmt.Sprintf("%s:%d", node.Address, receiverPort))
	if err != nil {
		t.Fatal(err)
	}
	recv := &labReceiver{}
	srv := &http.Server{Handler: recv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer func() { _ = srv.Close() }()

	if err := tunnelsUp(ctx, topo); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	parts := []plan.Part{swarm.Part{}, deploy.Stacks, tunnels.Part{}, firewall.Part{}}
	for _, r := range deploy.Deploy(ctx, topo, topo.Sites, parts, deploy.Options{Environ: []string{}, Poll: 500 * time.Millisecond, Progress: progress.New(testWriter{t})}) {
		if r.Err() != nil {
			t.Fatalf("deploy: %v", r.Err())
		}
	}
	t.Logf("deploy postgres, monitoring to 3 sites (converged): %s", time.Since(start).Round(time.Millisecond))

	prom := fmt.Sprintf("http://%s:9090", node.Address)
	client := netns.HTTPClient(hub.Lab.Namespace, 5*time.Second)
	query := func(q string) (map[string]float64, error) {
		resp, err := client.Get(prom + "/api/v1/query?query=" + url.QueryEscape(q))
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
	// Real exporters' own series (a stand-in has none of them), per site; sitectl's
	// queries.yaml loaded without error.
	for _, c := range []struct {
		q        string
		positive bool
	}{
		{`count by (site) (node_exporter_build_info)`, true},
		{`count by (site) (node_cpu_seconds_total)`, true},
		{`max by (site) (pg_up)`, true},
		{`max by (site) (pg_exporter_user_queries_load_error)`, false},
	} {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			got, err := query(c.q)
			ok := err == nil && len(got) == 3
			for _, v := range got {
				ok = ok && (v > 0) == c.positive
			}
			if ok {
				t.Logf("%s: %v", c.q, got)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %v (%v), want every site %s", c.q, got, err, map[bool]string{true: "> 0", false: "0"}[c.positive])
			}
			time.Sleep(2 * time.Second)
		}
	}

	// Cut douala-cloud: TunnelDown{site=douala} reaches the receiver through Alertmanager.
	if err := tunnels.Cut(ctx, topo, "douala-cloud"); err != nil {
		t.Fatalf("cut douala-cloud: %v", err)
	}
	cut := time.Now()
	healed := false
	defer func() {
		if !healed {
			_ = tunnels.Heal(context.Background(), topo, "douala-cloud")
		}
	}()
	var fired time.Time
	for {
		if at, ok := recv.first(monitoring.AlertTunnelDown, "douala", "firing", cut); ok {
			fired = at
			break
		}
		if time.Since(cut) > 2*time.Minute {
			t.Fatalf("no TunnelDown{site=douala} at the receiver 2m after the cut (for: 20s)")
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("douala-cloud cut: TunnelDown at the receiver after %s (for: 20s, scrape/evaluation 5s, group_wait 1s)", fired.Sub(cut).Round(100*time.Millisecond))
	if err := tunnels.Heal(ctx, topo, "douala-cloud"); err != nil {
		t.Fatalf("heal douala-cloud: %v", err)
	}
	healed = true
	heal := time.Now()
	for {
		if at, ok := recv.first(monitoring.AlertTunnelDown, "douala", "resolved", heal); ok {
			t.Logf("douala-cloud healed: TunnelDown resolved at the receiver after %s (group_interval 5s)", at.Sub(heal).Round(100*time.Millisecond))
			break
		}
		if time.Since(heal) > 2*time.Minute {
			t.Fatalf("TunnelDown{site=douala} not resolved at the receiver 2m after the heal")
		}
		time.Sleep(250 * time.Millisecond)
	}
	recv.mu.Lock()
	for _, a := range recv.auth {
		if a != "Bearer lab-hook-token" {
			t.Errorf("the receiver got Authorization %q, want the token of the Docker secret", a)
		}
	}
	for _, n := range recv.got {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == monitoring.AlertTunnelDown && a.Labels["site"] == "yaounde" {
				t.Errorf("TunnelDown for yaounde (%s) though only douala-cloud was cut", a.Status)
			}
		}
	}
	recv.mu.Unlock()

	// The monitoring stack's memory at the hub (docker stats of its containers).
	out, err := exec.CommandContext(ctx, "docker", "-H", hub.Engine.Host, "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}").CombinedOutput()
	if err != nil {
		t.Errorf("docker stats at %s: %v\n%s", hub.Name, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, monitoring.Name+"_") {
			t.Logf("memory at %s: %s", hub.Name, line)
		}
	}
}
