package deploy

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/internal/apps/appgen"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// writeApps writes n generated apps (appgen) into a new apps dir.
func writeApps(tb testing.TB, n int) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "apps")
	if err := appgen.Write(dir, n, appgen.Options{}); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// BenchmarkPlanAll20Apps is the local part of `sitectl plan --all` with 20 apps on
// the example's three sites: load and validate the configuration and the apps,
// render and convert every built-in stack and app of each site, and plan the stacks
// part against engines with no swarm yet (so every object is a step to create;
// the engines answer nothing else). The lab adds the engines' round trips.
func BenchmarkPlanAll20Apps(b *testing.B) {
	for _, v := range []string{"PG_PASSWORD", "PG_APP_PASSWORD", "DJANGO_SECRET_KEY", "MONGO_KEYFILE", "MONGO_PASSWORD", "KONG_TLS_CERT", "KONG_TLS_KEY", "GRAFANA_ADMIN_PASSWORD",
		"ELASTIC_PASSWORD", "KIBANA_ES_PASSWORD", "LOGSTASH_ES_PASSWORD"} {
		b.Setenv("SITECTL_"+v, "bench-not-a-secret")
	}
	appsDir := writeApps(b, 20)
	opts := Options{Open: func(context.Context, *sites.Site) (Engine, func(), error) { return noSwarmEngine{}, func() {}, nil }}
	planAll := func() *plan.Plan {
		names, err := apps.Names(appsDir)
		if err != nil {
			b.Fatal(err)
		}
		topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", KnownStacks: append(names, sites.KnownStacks...)})
		if err != nil {
			b.Fatal(err)
		}
		list, ps := apps.Load(apps.Options{Dir: appsDir, Topo: topo})
		if len(ps) > 0 {
			b.Fatal(ps)
		}
		topo.Apps = list
		return Plan(context.Background(), topo, topo.Sites, []plan.Part{Stacks, Apps}, opts)
	}
	p := planAll()
	if f := p.Failed(); len(f) > 0 {
		b.Fatalf("plan failed for %v: %+v", f, p.Sites)
	}
	services := 0
	for _, sp := range p.Sites {
		for _, st := range sp.Steps {
			if st.Component == ComponentService && st.Action == plan.Create && len(st.Name) > 3 && st.Name[:3] == "gen" {
				services++
			}
		}
	}
	// 7 apps at every site, 7 at the hub, 6 at each spoke: 7*3 + 7 + 6*2.
	if services != 40 {
		b.Fatalf("the plan creates %d app services, want 40", services)
	}
	b.ResetTimer()
	for b.Loop() {
		planAll()
	}
}
