package elk_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/elk"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestAppLogs: with the example apps (apps/: frontend everywhere, identity at the
// hub), each site's Logstash gives the events of the apps it runs an app field,
// besides site and environment (golden at the hub), and each app service logs to
// its node's Logstash with the gelf driver.
func TestAppLogs(t *testing.T) {
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), filepath.Join(stacktest.RepoRoot(t), "apps"))
	for _, s := range topo.Sites {
		in := stacks.Input{Topo: topo, Site: s}
		r, err := elk.Stack{}.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		conf := string(r.Files["logstash.conf"])
		want := `if [service] =~ /^(frontend)_/ {`
		if s.IsHub() {
			want = `if [service] =~ /^(frontend|identity)_/ {`
			golden.Assert(t, "apps-"+s.Name+"-logstash.conf", r.Files["logstash.conf"])
		}
		if !strings.Contains(conf, want) || !strings.Contains(conf, `"service" => "^(?<app>[^_]+)_"`) || !strings.Contains(conf, `"site" => "`+s.Name+`"`) {
			t.Errorf("%s pipeline lacks the app field for its apps (%s):\n%s", s.Name, want, conf)
		}
		if sections, err := topLevel(conf); err != nil || strings.Join(sections, ",") != "input,filter,output" {
			t.Errorf("%s pipeline: sections %v (%v)", s.Name, sections, err)
		}
		for _, a := range topo.AppsAt(s.Name) {
			ra, err := stacks.RenderApp(in, a)
			if err != nil {
				t.Fatal(err)
			}
			cfg := stacktest.LoadCompose(t, ra)
			for _, svc := range cfg.Services {
				if svc.Logging == nil || svc.Logging.Driver != "gelf" || svc.Logging.Options["gelf-address"] != "udp://127.0.0.1:12201" {
					t.Errorf("%s: app %s service %s logging %+v, want gelf to the node's Logstash", s.Name, a.Name, svc.Name, svc.Logging)
				}
			}
		}
	}
}
