package deploy

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/sites"
)

// labAPIAsApp (TestLabDeploy, after its prune removed the built-in django-api at
// douala): the Django API written as an app (internal/apps/testdata/apiapp, what
// apps/django-api is to be, design decision 30) deployed at douala on the lab's
// real Django image, with the lab's health check given per site the app's way
// (values.django-api.healthcheck: curl at /health, instead of the built-in's
// healthcheck: curl, health_path: /health). Its task turns healthy with that check.
func labAPIAsApp(t *testing.T, e *labEnv, cur []string) {
	appsDir := filepath.Join(t.TempDir(), "apps")
	if err := os.CopyFS(filepath.Join(appsDir, "django-api"), os.DirFS("../internal/apps/testdata/apiapp/django-api")); err != nil {
		t.Fatal(err)
	}
	set := append(slices.Clone(fast), cur...)
	topo, err := sites.Load(sites.Options{Dir: e.dir, Env: "lab", Environ: []string{}, Set: set})
	if err != nil {
		t.Fatal(err)
	}
	labreach.Install(topo)
	for _, s := range topo.Sites {
		s.Stacks = []string{"postgres"} // no built-in django-api (douala: as the prune above left it)
		// What the lab's overlay sets once no site runs the built-in (its
		// healthcheck: curl, health_path: /health, and fast's health_interval, the
		// app's way).
		s.Values = maps.Clone(s.Values) // the layers may share it between sites
		s.Values["django-api"] = map[string]any{"healthcheck": map[string]any{"test": lab.APIHealthcheck, "interval": "1s"}}
	}
	list, ps := apps.Load(apps.Options{Dir: appsDir, Topo: topo, Environ: []string{},
		Builtin: slices.DeleteFunc(slices.Clone(sites.KnownStacks), func(s string) bool { return s == "django-api" })})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	c := e.manager(t, topo, "douala")
	start := time.Now()
	sel, _ := topo.Select("douala")
	if err := Deploy(context.Background(), topo, sel, ownParts, testOpts(t))[0].Err(); err != nil {
		t.Fatalf("deploy: %v\ndjango-api_api's log:\n%s", err, serviceLog(t, c, "django-api_api"))
	}
	t.Logf("deploy of the API as an app at douala: %s", time.Since(start).Round(100*time.Millisecond))
	svc := services(t, c)["django-api_api"]
	if st := svc.ServiceStatus; st == nil || st.RunningTasks != 1 {
		t.Fatalf("django-api_api: status %+v, want 1 running task", st)
	}
	spec := svc.Spec.TaskTemplate.ContainerSpec
	if svc.Spec.Labels["sitectl.app"] != "django-api" || spec.Healthcheck == nil || len(spec.Healthcheck.Test) < 2 || spec.Healthcheck.Test[1] != "curl" || spec.Healthcheck.Interval != time.Second {
		t.Errorf("django-api_api: labels %v, health check %+v: want the app's, with the lab's curl every 1s", svc.Spec.Labels, spec.Healthcheck)
	}
	// Not checked: /api/ready. In the two runs so far (this subtest after only the
	// first deploy subtest) it answered 503 "database unavailable" for 30 s; the
	// built-in's readiness was not checked in those runs, so whether the app's
	// database settings are at fault is not known (docs/apps.md, "Not done yet").
}
