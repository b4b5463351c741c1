package apps_test

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	djangoapi "github.com/sitectl/sitectl/stacks/django-api"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestAPIAsApp renders the Django API written as an app (testdata/apiapp, the
// target of apps/django-api) next to the built-in django-api stack, at a spoke and
// at the hub, and compares the swarm services: same name, image, replicas,
// placement, update and rollback policy, health check, endpoint mode, role label,
// roll after postgres_db, and every variable of the built-in's with the same value
// (DB_PASSWORD_FILE at the app's database secret), whose content is the same
// postgres.app_password. What differs is listed in docs/apps.md.
func TestAPIAsApp(t *testing.T) {
	t.Setenv("SITECTL_PG_APP_PASSWORD", "app-role-pw")
	t.Setenv("SITECTL_DJANGO_SECRET_KEY", "django-key")
	builtin := stacktest.Load(t, "production")
	topo, list := apiAppTopology(t, nil)
	for _, site := range []string{"douala", "cloud"} {
		want := convert(t, stacks.Input{Topo: builtin, Site: builtin.Site(site)}, nil)
		got := convert(t, stacks.Input{Topo: topo, Site: topo.Site(site)}, list[0])
		w, g := want.Services[0], got.Services[0]
		if w.Name != "django-api_api" || g.Name != w.Name {
			t.Fatalf("%s: services %s and %s, want django-api_api", site, g.Name, w.Name)
		}
		wc, gc := w.Spec.TaskTemplate.ContainerSpec, g.Spec.TaskTemplate.ContainerSpec
		checks := map[string][2]any{
			"image":          {gc.Image, wc.Image},
			"replicas":       {*g.Spec.Mode.Replicated.Replicas, *w.Spec.Mode.Replicated.Replicas},
			"placement":      {g.Spec.TaskTemplate.Placement.Constraints, w.Spec.TaskTemplate.Placement.Constraints},
			"update_config":  {*g.Spec.UpdateConfig, *w.Spec.UpdateConfig},
			"rollback":       {*g.Spec.RollbackConfig, *w.Spec.RollbackConfig},
			"healthcheck":    {*gc.Healthcheck, *wc.Healthcheck},
			"restart_policy": {*g.Spec.TaskTemplate.RestartPolicy, *w.Spec.TaskTemplate.RestartPolicy},
			"endpoint_mode":  {endpointMode(g.Spec.EndpointSpec), endpointMode(w.Spec.EndpointSpec)},
			"role label":     {g.Spec.Labels["sitectl.role"], w.Spec.Labels["sitectl.role"]},
			"rolls after":    {g.RollsAfter, w.RollsAfter},
		}
		for _, k := range slices.Sorted(maps.Keys(checks)) {
			if !reflect.DeepEqual(checks[k][0], checks[k][1]) {
				t.Errorf("%s: %s: app %+v, built-in %+v", site, k, checks[k][0], checks[k][1])
			}
		}
		genv := envMap(gc.Env)
		for k, v := range envMap(wc.Env) {
			switch {
			case k == "DB_PASSWORD_FILE":
				if genv[k] != "/run/secrets/"+sites.AppDatabaseTarget {
					t.Errorf("%s: DB_PASSWORD_FILE %q, want the app's database secret", site, genv[k])
				}
			case genv[k] != v:
				t.Errorf("%s: %s: app %q, built-in %q", site, k, genv[k], v)
			}
		}
		gsec, wsec := secretData(got), secretData(want)
		if gsec["sitectl-database-password"] != wsec["postgres-app-password"] || gsec["django-secret-key"] != wsec["django-secret-key"] || gsec["django-secret-key"] == "" {
			t.Errorf("%s: secrets app %v, built-in %v", site, gsec, wsec)
		}
	}
}

// apiAppTopology loads production with the Django API as the app testdata/apiapp: no site
// runs the built-in stack (Kong serves the app's /api and /admin, design decision
// 30). edit changes the sites before the app is loaded.
func apiAppTopology(t *testing.T, edit func(*sites.Topology)) (*sites.Topology, []*sites.App) {
	t.Helper()
	var set []string
	for _, s := range []string{"douala", "yaounde", "cloud"} {
		set = append(set, s+":stacks=postgres,mongo,kong")
	}
	topo := stacktest.Load(t, "production", set...)
	if edit != nil {
		edit(topo)
	}
	list, ps := apps.Load(apps.Options{Dir: "testdata/apiapp", Topo: topo, Environ: []string{},
		Builtin: slices.DeleteFunc(slices.Clone(sites.KnownStacks), func(s string) bool { return s == djangoapi.Name })})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	return topo, list
}

func convert(t *testing.T, in stacks.Input, a *sites.App) *stacks.Desired {
	t.Helper()
	var r stacks.Rendered
	var err error
	if a == nil {
		r, err = djangoapi.Stack{}.Render(in)
	} else {
		r, err = stacks.RenderApp(in, a)
	}
	if err != nil {
		t.Fatal(err)
	}
	d, err := stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{Environment: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// endpointMode is the swarm's effective endpoint mode (unset is vip).
func endpointMode(e *swarm.EndpointSpec) swarm.ResolutionMode {
	if e == nil || e.Mode == "" {
		return swarm.ResolutionModeVIP
	}
	return e.Mode
}

func envMap(env []string) map[string]string {
	out := map[string]string{}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		out[k] = v
	}
	return out
}

// secretData maps each secret's name in its stack to its content.
func secretData(d *stacks.Desired) map[string]string {
	out := map[string]string{}
	for _, s := range d.Secrets {
		_, name, _ := strings.Cut(s.Logical, "_")
		out[name] = string(s.Data)
	}
	return out
}
