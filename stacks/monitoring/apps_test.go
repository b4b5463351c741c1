package monitoring_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestAppTargets: the hub's Prometheus scrapes each fixture app that declares a
// metrics port, at every node of every site running it, on the published port and
// the app's metrics path; an app without one (plain) has no job. Golden, and
// promtool accepts the file when installed.
func TestAppTargets(t *testing.T) {
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), stacktest.FixtureApps(t))
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.HubSite()})
	if err != nil {
		t.Fatal(err)
	}
	prom := r.Files["prometheus.yml"]
	golden.Assert(t, "apps/prometheus.yml", prom)
	var p struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string
				Labels  map[string]string
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(prom, &p); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sc := range p.ScrapeConfigs {
		if sc.JobName == monitoring.AppJob("plain") {
			t.Error("app plain declares no metrics port but has a scrape job")
		}
		if sc.JobName == monitoring.AppJob("hello") && sc.MetricsPath != "/metrics" {
			t.Errorf("hello's metrics path %q, want /metrics", sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				got[sc.JobName+" "+st.Labels["site"]+" "+st.Labels["app"]+" "+tg] = true
			}
		}
	}
	for _, s := range topo.Sites {
		for _, n := range s.Nodes {
			if want := "app-hello " + s.Name + " hello " + n.Address + ":19180"; !got[want] {
				t.Errorf("missing target %s", want)
			}
		}
	}
	if path, err := exec.LookPath("promtool"); err == nil {
		dir := t.TempDir()
		for name, b := range r.Files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command(path, "check", "config", "--syntax-only", filepath.Join(dir, "prometheus.yml")).CombinedOutput(); err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
	}
}

// TestAppDesiredReplicas: the hub's desired-replica rules cover the apps' services
// as the built-in stacks' (the Django API keeps its alert once it is an app): the
// fixture app hello's entry service with its replicas per site (2 at the hub, its
// x-sitectl.site override), and plain's service.
func TestAppDesiredReplicas(t *testing.T) {
	topo := stacktest.WithApps(t, stacktest.Load(t, "dev"), stacktest.FixtureApps(t))
	ds, _, err := monitoring.DesiredReplicas(topo)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, d := range ds {
		got[d.Site+"/"+d.Service] = d.Replicas
	}
	for k, want := range map[string]int{"cloud/hello_web": 2, "douala/hello_web": 1, "yaounde/hello_web": 1,
		"cloud/plain_echo": 1, "douala/django-api_api": 1} {
		if n, ok := got[k]; !ok || n != want {
			t.Errorf("%s: desired %d (listed %v), want %d", k, n, ok, want)
		}
	}
}
