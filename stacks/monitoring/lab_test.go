package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/elk"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/tunnels"
	"github.com/sitectl/sitectl/tunnels/tunneltest"
)

// labPrefix names this package's lab (namespaces st-*, state dir ...-st) so it never
// meets another package's.
const labPrefix = "st"

// labSettings keep the lab test short: scrape and evaluate every 5 s, TunnelDown
// after 20 s. Everything else is as rendered for production.
var labSettings = []string{
	"values.monitoring.scrape_interval=5s",
	"values.monitoring.evaluation_interval=5s",
	"values.monitoring.alerts.tunnel_down_for=20s",
	// cAdvisor's read-only view of the engine's data root: the lab's engines keep
	// theirs under the lab state dir, /var/lib exists everywhere.
	"values.monitoring.docker_root=/var/lib",
	// Quick container health checks so the deploy's convergence wait is short.
	"values.kong.health_interval=2s",
	"values.elk.health_interval=2s",
	"values.monitoring.health_interval=2s",
}

// TestLabMonitoring deploys the kong, elk and monitoring stacks to the three lab
// sites with the deploy engine (swarm, stacks, tunnels), checks that the real
// Prometheus at the hub scrapes the douala and yaounde targets through the tunnels
// (its targets API shows them up), then cuts the douala-cloud tunnel and waits for
// TunnelDown{link="douala-cloud"} to fire within its for: window, and heals.
func TestLabMonitoring(t *testing.T) {
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
		b = regexp.MustCompile(`(?m)^stacks: .*$`).ReplaceAll(b, []byte("stacks: [kong, elk, monitoring]"))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
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

	start = time.Now()
	if err := tunnelsUp(ctx, topo); err != nil {
		t.Fatal(err)
	}
	t.Logf("tunnels up: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	pw := testWriter{t}
	for _, r := range deploy.Deploy(ctx, topo, topo.Sites, deploy.Parts(deploy.Options{}), deploy.Options{Environ: []string{}, Poll: 500 * time.Millisecond, Progress: progress.New(pw)}) {
		if r.Err() != nil {
			t.Fatalf("deploy: %v", r.Err())
		}
		t.Logf("deploy %s: %d steps in %s", r.Site, len(r.Applied), r.Duration.Round(time.Millisecond))
	}
	t.Logf("deploy kong, elk, monitoring to 3 sites (converged): %s", time.Since(start).Round(time.Millisecond))

	hub := topo.HubSite()
	prom := fmt.Sprintf("http://%s:9090", monitoring.PrometheusNode(hub).Address)
	client := netns.HTTPClient(hub.Lab.Namespace, 5*time.Second)
	get := func(path string, v any) error {
		resp, err := client.Get(prom + path)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	want, err := monitoring.Targets(topo)
	if err != nil {
		t.Fatal(err)
	}
	type targetsResp struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				ScrapeURL string            `json:"scrapeUrl"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	start = time.Now()
	var last string
	for {
		var tr targetsResp
		up := map[string]bool{}
		if err := get("/api/v1/targets", &tr); err != nil {
			last = err.Error()
		} else {
			var down []string
			for _, at := range tr.Data.ActiveTargets {
				if at.Health == "up" {
					up[at.Labels["job"]+"@"+at.Labels["site"]+"/"+at.Labels["node"]] = true
				} else {
					down = append(down, at.ScrapeURL+" "+at.Health+" "+at.LastError)
				}
			}
			last = "down: " + strings.Join(down, "; ")
		}
		missing := 0
		for _, w := range want {
			if !up[w.Job+"@"+w.Site+"/"+w.Node] {
				missing++
			}
		}
		if missing == 0 && len(up) >= len(want) {
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("Prometheus at %s: %d of %d targets not up after 2m (%s)", hub.Name, missing, len(want), last)
		}
		time.Sleep(2 * time.Second)
	}
	spokes := 0
	for _, w := range want {
		if w.Site != hub.Name {
			spokes++
		}
	}
	t.Logf("Prometheus at %s: all %d targets up (%d at douala and yaounde, through the tunnels) after %s", hub.Name, len(want), spokes, time.Since(start).Round(time.Second))

	// Logstash at douala ships to the hub's Elasticsearch at the hub node's LAN
	// address: from a douala node that address answers (through the tunnel), and
	// stops answering when the tunnel is cut (below).
	esURL := elk.ElasticsearchURL(topo, topo.Site("douala")) + "/"
	doualaNS, err := lab.ResolveNamespace(opts, "douala/"+topo.Site("douala").Nodes[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	fromDouala := netns.HTTPClient(doualaNS, 3*time.Second)
	if resp, err := fromDouala.Get(esURL); err != nil {
		t.Fatalf("from douala, the hub's Elasticsearch %s: %v", esURL, err)
	} else {
		_ = resp.Body.Close()
		t.Logf("from douala: hub Elasticsearch %s answers %s", esURL, resp.Status)
	}

	// Cut the douala-cloud tunnel: TunnelDown fires within for: (20 s) plus a scrape
	// timeout and an evaluation or two.
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
	type alertsResp struct {
		Data struct {
			Alerts []struct {
				Labels   map[string]string `json:"labels"`
				State    string            `json:"state"`
				ActiveAt time.Time         `json:"activeAt"`
			} `json:"alerts"`
		} `json:"data"`
	}
	var firing time.Duration
	for firing == 0 {
		var ar alertsResp
		if err := get("/api/v1/alerts", &ar); err == nil {
			for _, a := range ar.Data.Alerts {
				if a.Labels["alertname"] == monitoring.AlertTunnelDown && a.Labels["link"] == "douala-cloud" && a.State == "firing" {
					firing = time.Since(cut)
				}
				if a.Labels["alertname"] == monitoring.AlertTunnelDown && a.Labels["link"] == "yaounde-cloud" {
					t.Errorf("TunnelDown for yaounde-cloud (%s) though only douala-cloud is cut", a.State)
				}
			}
		}
		if time.Since(cut) > 90*time.Second {
			t.Fatalf("TunnelDown{link=douala-cloud} not firing 90s after the cut (for: 20s)")
		}
		time.Sleep(time.Second)
	}
	if resp, err := fromDouala.Get(esURL); err == nil {
		_ = resp.Body.Close()
		t.Errorf("with douala-cloud cut, douala still reaches %s: Logstash would not be shipping through the tunnel", esURL)
	}
	t.Logf("douala-cloud cut: TunnelDown firing after %s (for: 20s, scrape/evaluation every 5s, scrape timeout 5s)", firing.Round(time.Second))
	// Earliest: for: itself. Latest: a scrape interval and timeout to see the targets
	// fail, an evaluation to go pending, for:, an evaluation to fire (5+5+5+20+5 s),
	// plus slack for a loaded machine.
	if firing < 20*time.Second || firing > 50*time.Second {
		t.Errorf("TunnelDown fired %s after the cut; want between its for: (20s) and 50s", firing)
	}

	if err := tunnels.Heal(ctx, topo, "douala-cloud"); err != nil {
		t.Fatalf("heal douala-cloud: %v", err)
	}
	healed = true
	heal := time.Now()
	for {
		var ar alertsResp
		still := false
		if err := get("/api/v1/alerts", &ar); err != nil {
			still = true
		} else {
			for _, a := range ar.Data.Alerts {
				still = still || (a.Labels["alertname"] == monitoring.AlertTunnelDown && a.Labels["link"] == "douala-cloud")
			}
		}
		if !still {
			break
		}
		if time.Since(heal) > 60*time.Second {
			t.Fatal("TunnelDown{link=douala-cloud} still active 60s after the heal")
		}
		time.Sleep(time.Second)
	}
	t.Logf("douala-cloud healed: TunnelDown resolved after %s", time.Since(heal).Round(time.Second))
}

// tunnelsUp brings the lab's tunnels up the way the lab needs: certificates, the
// hub's transit addresses (kernel-libipsec), connections loaded, every link up (a
// CHILD_SA refused before the transit addresses existed is cut and healed once).
func tunnelsUp(ctx context.Context, topo *sites.Topology) error {
	gws, err := tunnels.Build(topo)
	if err != nil {
		return err
	}
	for _, g := range gws {
		s := topo.Site(g.Site)
		ca, gw := tunnels.SiteCerts(topo, s)
		if _, _, err := tunnels.Ensure(ca, gw, s.Gateway.ID, s.Tunnel.KeyType, s.Tunnel.CertLifetime.D()); err != nil {
			return fmt.Errorf("certs %s: %w", s.Name, err)
		}
		if err := tunnels.SetupTransit(ctx, s.Reach, g); err != nil {
			return fmt.Errorf("transit %s: %w", s.Name, err)
		}
	}
	for _, g := range gws {
		if err := tunneltest.Install(ctx, topo, g); err != nil {
			return fmt.Errorf("install tunnels %s: %w", g.Site, err)
		}
	}
	for _, l := range topo.Links {
		if err := tunnels.WaitUp(ctx, topo, l.Name(), 5*time.Second); err != nil {
			if err := tunnels.Cut(ctx, topo, l.Name()); err != nil {
				return err
			}
			if err := tunnels.Heal(ctx, topo, l.Name()); err != nil {
				return fmt.Errorf("tunnel %s: %w", l.Name(), err)
			}
		}
	}
	return nil
}

// testWriter sends deploy progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
