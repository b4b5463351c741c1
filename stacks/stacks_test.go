package stacks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	_ "github.com/sitectl/sitectl/stacks/all"
)

var envs = []string{"dev", "staging", "production"}

// engineStacks are the stacks this package's engine is proven with.
var engineStacks = []string{"django-api", "postgres"}

func load(t *testing.T, env string, set ...string) *sites.Topology {
	t.Helper()
	// The hub's pki_dir: stacktest's fixture with sitectl's Kong CA (public parts).
	pki, err := filepath.Abs("stacktest/testdata/pki")
	if err != nil {
		t.Fatal(err)
	}
	set = append([]string{"cloud:tunnel.pki_dir=" + pki}, set...)
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: env, Environ: []string{}, Set: set})
	if err != nil {
		t.Fatalf("load %s: %v", env, err)
	}
	return topo
}

func setSecrets(t *testing.T) {
	t.Setenv("SITECTL_PG_PASSWORD", "pg-secret-value-1")
	t.Setenv("SITECTL_PG_APP_PASSWORD", "pg-app-secret-value-1")
	t.Setenv("SITECTL_DJANGO_SECRET_KEY", "django-secret-value-1")
	t.Setenv("SITECTL_MONGO_KEYFILE", "mongo-secret-value-1")
}

// TestRenderGolden renders each stack for each site and environment.
func TestRenderGolden(t *testing.T) {
	for _, env := range envs {
		topo := load(t, env)
		for _, site := range topo.Sites {
			for _, name := range engineStacks {
				t.Run(fmt.Sprintf("%s/%s/%s", name, site.Name, env), func(t *testing.T) {
					st, err := stacks.Get(name)
					if err != nil {
						t.Fatal(err)
					}
					r, err := st.Render(stacks.Input{Topo: topo, Site: site})
					if err != nil {
						t.Fatal(err)
					}
					if r.Stack != name {
						t.Errorf("rendered stack is %q, want %q", r.Stack, name)
					}
					golden.Assert(t, fmt.Sprintf("render/%s/%s-%s.yaml", name, site.Name, env), r.Compose)
				})
			}
		}
	}
}

func only(t *testing.T, topo *sites.Topology, site string) stacks.Input {
	t.Helper()
	s := topo.Site(site)
	if s == nil {
		t.Fatalf("no site %s", site)
	}
	s.Stacks = engineStacks
	return stacks.Input{Topo: topo, Site: s}
}

// TestConvertGolden converts the stacks with docker/cli's loader and converters and
// records the specs sitectl would apply (secret values are never part of them).
func TestConvertGolden(t *testing.T) {
	setSecrets(t)
	for _, env := range envs {
		topo := load(t, env)
		for _, site := range topo.SiteNames() {
			t.Run(site+"/"+env, func(t *testing.T) {
				d, err := stacks.Build(context.Background(), only(t, topo, site), stacks.ConvertOptions{Key: []byte("cluster-id")})
				if err != nil {
					t.Fatal(err)
				}
				b, err := json.MarshalIndent(d, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range []string{"pg-secret-value-1", "django-secret-value-1"} {
					if strings.Contains(string(b), v) {
						t.Fatalf("a secret value is in the desired state's JSON")
					}
				}
				golden.Assert(t, fmt.Sprintf("convert/%s-%s.json", site, env), append(b, '\n'))
			})
		}
	}
}

func build(t *testing.T, topo *sites.Topology, site string, key string) *stacks.Desired {
	t.Helper()
	d, err := stacks.Build(context.Background(), only(t, topo, site), stacks.ConvertOptions{Key: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func service(t *testing.T, d *stacks.Desired, name string) stacks.Service {
	t.Helper()
	for _, s := range d.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %s in %s", name, d.Site)
	return stacks.Service{}
}

func secret(t *testing.T, d *stacks.Desired, logical string) stacks.Object {
	t.Helper()
	for _, o := range d.Secrets {
		if o.Logical == logical {
			return o
		}
	}
	t.Fatalf("no secret %s in %s", logical, d.Site)
	return stacks.Object{}
}

func TestConvertDetectsChanges(t *testing.T) {
	setSecrets(t)
	base := build(t, load(t, "dev"), "douala", "k")

	t.Run("same input, same names and hashes", func(t *testing.T) {
		again := build(t, load(t, "dev"), "douala", "k")
		for _, s := range base.Services {
			if got := service(t, again, s.Name).Hash; got != s.Hash {
				t.Errorf("%s: hash %s then %s for the same input", s.Name, s.Hash, got)
			}
		}
		for i := range base.Secrets {
			if base.Secrets[i].Name != again.Secrets[i].Name {
				t.Errorf("secret name %s then %s", base.Secrets[i].Name, again.Secrets[i].Name)
			}
		}
	})
	t.Run("replicas change only the api", func(t *testing.T) {
		d := build(t, load(t, "dev", "douala:values.django-api.replicas=3"), "douala", "k")
		api := service(t, d, "django-api_api")
		if api.Hash == service(t, base, "django-api_api").Hash {
			t.Error("replica change kept the api's hash")
		}
		if r := *api.Spec.Mode.Replicated.Replicas; r != 3 {
			t.Errorf("replicas = %d, want 3", r)
		}
		if service(t, d, "postgres_db").Hash != service(t, base, "postgres_db").Hash {
			t.Error("replica change of the api changed postgres' hash")
		}
	})
	t.Run("secret change renames the secret and rolls its users", func(t *testing.T) {
		t.Setenv("SITECTL_PG_PASSWORD", "pg-secret-value-2")
		d := build(t, load(t, "dev"), "douala", "k")
		// The site's own password, and the passfile holding the hub's (the same
		// variable in the example config) for douala's subscription.
		for _, logical := range []string{"postgres_postgres-password", "postgres_postgres-pgpass"} {
			before, after := secret(t, base, logical), secret(t, d, logical)
			if before.Name == after.Name {
				t.Errorf("secret %s kept its name %s after its value changed", logical, after.Name)
			}
		}
		if secret(t, d, "django-api_django-secret-key").Name != secret(t, base, "django-api_django-secret-key").Name {
			t.Error("an unchanged secret got a new name")
		}
		if service(t, d, "postgres_db").Hash == service(t, base, "postgres_db").Hash {
			t.Errorf("postgres_db uses the postgres password but its hash did not change")
		}
		if service(t, d, "django-api_api").Hash != service(t, base, "django-api_api").Hash {
			t.Errorf("django-api_api rolled on sitectl's password: it must connect as its own role")
		}
	})
	t.Run("app password change rolls only the api", func(t *testing.T) {
		t.Setenv("SITECTL_PG_APP_PASSWORD", "pg-app-secret-value-2")
		d := build(t, load(t, "dev"), "douala", "k")
		logical := "django-api_postgres-app-password"
		if secret(t, base, logical).Name == secret(t, d, logical).Name {
			t.Errorf("secret %s kept its name after its value changed", logical)
		}
		if service(t, d, "django-api_api").Hash == service(t, base, "django-api_api").Hash {
			t.Error("django-api_api uses the app password but its hash did not change")
		}
		if service(t, d, "postgres_db").Hash != service(t, base, "postgres_db").Hash {
			t.Error("postgres_db rolled on the application's password")
		}
	})
	t.Run("name hash is keyed", func(t *testing.T) {
		d := build(t, load(t, "dev"), "douala", "other-cluster")
		if d.Secrets[0].Name == base.Secrets[0].Name {
			t.Error("secret name does not depend on the key")
		}
	})
}

func TestConvertLabelsAndNetworks(t *testing.T) {
	setSecrets(t)
	d := build(t, load(t, "production"), "douala", "k")
	for _, s := range d.Services {
		for k, want := range map[string]string{stacks.LabelManaged: "true", stacks.LabelSite: "douala", stacks.LabelStack: s.Stack, stacks.LabelSpecHash: s.Hash} {
			if got := s.Spec.Labels[k]; got != want {
				t.Errorf("%s label %s = %q, want %q", s.Name, k, got, want)
			}
		}
	}
	for _, o := range append(d.Secrets, d.Configs...) {
		if o.Labels[stacks.LabelManaged] != "true" || o.Labels[stacks.LabelObject] != o.Logical {
			t.Errorf("%s labels %v", o.Name, o.Labels)
		}
	}
	nets := map[string]stacks.Network{}
	for _, n := range d.Networks {
		nets[n.Name] = n
	}
	if len(nets) != 3 {
		t.Fatalf("networks %v, want edge, app, data", nets)
	}
	if nets["data"].Create.Attachable {
		t.Error("data is attachable")
	}
	if _, enc := nets["app"].Create.Options["encrypted"]; !enc {
		t.Error("app is not encrypted in production")
	}
	if got := nets["data"].Create.IPAM.Config[0].Subnet.String(); got != "10.111.2.0/24" {
		t.Errorf("data subnet %s", got)
	}
	if nets["edge"].Note == "" {
		t.Error("edge is unencrypted without a note")
	}
	api := service(t, d, "django-api_api")
	if api.Spec.UpdateConfig.Order != "start-first" || api.Spec.UpdateConfig.FailureAction != "rollback" {
		t.Errorf("api update config %+v", api.Spec.UpdateConfig)
	}
	if n := len(api.Spec.TaskTemplate.ContainerSpec.Secrets); n != 2 {
		t.Errorf("api has %d secrets, want 2", n)
	}
	pg := service(t, d, "postgres_db")
	if c := pg.Spec.TaskTemplate.Placement.Constraints; len(c) != 1 || c[0] != "node.labels.role == db" {
		t.Errorf("postgres placement %v", c)
	}
	if p := pg.Spec.EndpointSpec.Ports; len(p) != 1 || p[0].PublishMode != "host" || p[0].PublishedPort != 5432 {
		t.Errorf("postgres ports %+v", p)
	}
}

func TestConvertErrors(t *testing.T) {
	setSecrets(t)
	topo := load(t, "dev")
	t.Run("missing secret source", func(t *testing.T) {
		in := only(t, topo, "douala")
		delete(in.Site.Secrets, "django-secret-key")
		_, err := stacks.Build(context.Background(), in, stacks.ConvertOptions{})
		if err == nil || !strings.Contains(err.Error(), "secrets.django-secret-key") {
			t.Fatalf("err = %v, want it to name secrets.django-secret-key", err)
		}
	})
	t.Run("unset variable", func(t *testing.T) {
		t.Setenv("SITECTL_PG_PASSWORD", "")
		in := only(t, load(t, "dev"), "yaounde")
		_, err := stacks.Build(context.Background(), in, stacks.ConvertOptions{})
		if err != nil {
			t.Fatalf("an empty but set variable is a value: %v", err)
		}
	})
	t.Run("unregistered stack", func(t *testing.T) {
		in := only(t, load(t, "dev"), "cloud")
		in.Site.Stacks = []string{"nosuch"}
		_, err := stacks.Build(context.Background(), in, stacks.ConvertOptions{})
		if err == nil || !strings.Contains(err.Error(), "nosuch") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad compose", func(t *testing.T) {
		in := only(t, load(t, "dev"), "cloud")
		_, err := stacks.Convert(context.Background(), in, stacks.Rendered{Stack: "x", Compose: []byte("version: \"3.8\"\nservices:\n  a:\n    image: x\n    deploy: {replicas: many}\n")}, stacks.ConvertOptions{})
		if err == nil || !strings.Contains(err.Error(), "stack x for cloud") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("interpolation from the environment", func(t *testing.T) {
		in := only(t, load(t, "dev"), "cloud")
		d, err := stacks.Convert(context.Background(), in, stacks.Rendered{Stack: "x", Compose: []byte("version: \"3.8\"\nservices:\n  a:\n    image: busybox:${TAG}\n    networks: [app]\nnetworks:\n  app: {external: true}\n")},
			stacks.ConvertOptions{Environment: map[string]string{"TAG": "1.36"}})
		if err != nil {
			t.Fatal(err)
		}
		if img := d.Services[0].Spec.TaskTemplate.ContainerSpec.Image; img != "busybox:1.36" {
			t.Errorf("image %s", img)
		}
	})
}

func TestDependsOn(t *testing.T) {
	setSecrets(t)
	topo := load(t, "dev")
	convert := func(t *testing.T, compose string) (*stacks.Desired, error) {
		t.Helper()
		return stacks.Convert(context.Background(), only(t, topo, "cloud"),
			stacks.Rendered{Stack: "x", Compose: []byte("version: \"3.8\"\nservices:\n" + compose)}, stacks.ConvertOptions{})
	}
	t.Run("the API rolls after the site's database, and is created with it", func(t *testing.T) {
		for _, site := range topo.SiteNames() {
			d := build(t, topo, site, "k")
			var names []string
			for _, s := range d.Services {
				names = append(names, s.Name)
			}
			if strings.Join(names, " ") != "postgres_db django-api_api" {
				t.Errorf("%s: services in order %v, want postgres_db before django-api_api", site, names)
			}
			api := service(t, d, "django-api_api")
			if strings.Join(api.RollsAfter, ",") != "postgres_db" || len(api.DependsOn) != 0 {
				t.Errorf("%s: django-api_api rolls after %v and depends on %v, want rolls after [postgres_db] only", site, api.RollsAfter, api.DependsOn)
			}
		}
	})
	t.Run("without the postgres stack there is nothing to wait for", func(t *testing.T) {
		in := only(t, load(t, "dev"), "douala")
		in.Site.Stacks = []string{"django-api"}
		d, err := stacks.Build(context.Background(), in, stacks.ConvertOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if api := service(t, d, "django-api_api"); len(api.After()) != 0 {
			t.Errorf("ordered after %v, which the site does not run", api.After())
		}
	})
	t.Run("compose depends_on is scoped to the stack", func(t *testing.T) {
		d, err := convert(t, "  a:\n    image: busybox\n    depends_on: [b]\n    x-sitectl-depends-on: [postgres_db]\n  b:\n    image: busybox\n")
		if err != nil {
			t.Fatal(err)
		}
		if deps := service(t, d, "x_a").DependsOn; strings.Join(deps, ",") != "postgres_db,x_b" {
			t.Errorf("x_a depends on %v, want [postgres_db x_b]", deps)
		}
	})
	t.Run("rolls-after is its own list", func(t *testing.T) {
		d, err := convert(t, "  a:\n    image: busybox\n    x-sitectl-rolls-after: [postgres_db, x_b, postgres_db]\n  b:\n    image: busybox\n")
		if err != nil {
			t.Fatal(err)
		}
		if a := service(t, d, "x_a"); strings.Join(a.RollsAfter, ",") != "postgres_db,x_b" || len(a.DependsOn) != 0 {
			t.Errorf("x_a rolls after %v and depends on %v, want rolls after [postgres_db x_b] only", a.RollsAfter, a.DependsOn)
		}
	})
	for name, tc := range map[string]struct{ compose, want string }{
		"unknown service":              {"  a:\n    image: busybox\n    depends_on: [db]\n", `depends_on names "db", which is not a service of this stack`},
		"not a list":                   {"  a:\n    image: busybox\n    x-sitectl-depends-on: postgres_db\n", "x-sitectl-depends-on must be a list"},
		"not a swarm name":             {"  a:\n    image: busybox\n    x-sitectl-depends-on: [db]\n", "db is not a service name of the form <stack>_<service>"},
		"rolls-after not a list":       {"  a:\n    image: busybox\n    x-sitectl-rolls-after: postgres_db\n", "x-sitectl-rolls-after must be a list"},
		"rolls-after not a swarm name": {"  a:\n    image: busybox\n    x-sitectl-rolls-after: [7]\n", "x-sitectl-rolls-after: 7 is not a service name"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := convert(t, tc.compose)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "service a") {
				t.Fatalf("err = %v, want it to name service a and say %q", err, tc.want)
			}
		})
	}
}

func TestCheckValues(t *testing.T) {
	site := &sites.Site{Name: "douala", Values: map[string]map[string]any{"x": {"replicas": 2, "helth_path": "/h"}}}
	defaults := map[string]any{"replicas": 1, "health_path": "/healthz"}
	err := stacks.CheckValues(stacks.Input{Site: site}, "x", defaults)
	if err == nil || !strings.Contains(err.Error(), "values.x.helth_path names no setting of stack x; did you mean values.x.health_path?") {
		t.Fatalf("misspelt key: %v", err)
	}
	if strings.Contains(err.Error(), "values.x.replicas") {
		t.Fatalf("a known key refused: %v", err)
	}
	delete(site.Values["x"], "helth_path")
	if err := stacks.CheckValues(stacks.Input{Site: site}, "x", defaults); err != nil {
		t.Fatalf("known keys refused: %v", err)
	}
}
