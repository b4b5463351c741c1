package apps_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	_ "github.com/sitectl/sitectl/stacks/all"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

const fixtures = "testdata/apps"

// TestFixtures loads the fixture apps (no Go code names them) for every
// environment: where each runs, its replicas and image per site and environment.
func TestFixtures(t *testing.T) {
	for _, tc := range []struct {
		env, image string
		cloud      int
	}{
		{"dev", "sitectl-lab/cadvisor:standin", 2},
		{"staging", "sitectl-lab/cadvisor:standin", 1},
		{"production", "registry.example.org/hello:1.4.2", 2},
	} {
		t.Run(tc.env, func(t *testing.T) {
			topo := stacktest.Load(t, tc.env)
			list, ps := apps.Load(apps.Options{Dir: fixtures, Topo: topo, Environ: []string{}})
			if len(ps) > 0 {
				t.Fatal(ps)
			}
			if len(list) != 2 || list[0].Name != "hello" || list[1].Name != "plain" {
				t.Fatalf("apps %+v, want hello and plain", list)
			}
			hello, plain := list[0], list[1]
			if len(hello.Sites) != 3 || hello.Service != "web" || hello.Port != 8080 || hello.MetricsPublished != 19180 {
				t.Errorf("hello: %+v", hello)
			}
			if got := hello.Sites["cloud"]; got.Replicas != tc.cloud || got.Image != tc.image {
				t.Errorf("hello at cloud: %+v, want %d replicas of %s", got, tc.cloud, tc.image)
			}
			if got := hello.Sites["douala"]; got.Replicas != 1 {
				t.Errorf("hello at douala: %d replicas, want 1", got.Replicas)
			}
			if plain.Service != "echo" || plain.Port != 0 || plain.Sites["yaounde"].Image != "sitectl-lab/cadvisor:standin" {
				t.Errorf("plain: %+v", plain)
			}
		})
	}
}

// TestValuesLayer: the sites' values.<app> (here --set) is the last layer, over
// x-sitectl's site and env settings.
func TestValuesLayer(t *testing.T) {
	dir := stacktest.Load(t, "dev").Dir
	known := append([]string{"hello", "plain"}, sites.KnownStacks...)
	topo, err := sites.Load(sites.Options{Dir: dir, Env: "dev", Environ: []string{},
		Set: []string{"cloud:values.hello.replicas=5", "douala:values.hello.image=x/hello:2"}, KnownStacks: known})
	if err != nil {
		t.Fatal(err)
	}
	list, ps := apps.Load(apps.Options{Dir: fixtures, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	if got := list[0].Sites["cloud"].Replicas; got != 5 {
		t.Errorf("hello at cloud: %d replicas, want 5 from --set", got)
	}
	if got := list[0].Sites["douala"].Image; got != "x/hello:2" {
		t.Errorf("hello at douala: image %s, want x/hello:2 from --set", got)
	}
}

// TestRender: each app renders for each site running it and converts like a stack
// (docker/cli's loader and converters): sitectl's labels, the site's replicas and
// image, the app network for the routed service; the plain stack file keeps its own
// service settings.
func TestRender(t *testing.T) {
	// production: hello's image there is not the one its compose file names.
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), fixtures)
	for _, s := range topo.Sites {
		files, err := stacks.Tree(context.Background(), stacks.Input{Topo: topo, Site: s}, map[string]string{})
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, f := range files {
			paths = append(paths, f.Path)
		}
		if all := " " + strings.Join(paths, " ") + " "; !strings.Contains(all, " hello/compose.yaml ") || !strings.Contains(all, " plain/compose.yaml ") {
			t.Errorf("%s: rendered tree %v lacks the apps", s.Name, paths)
		}
		for _, a := range topo.Apps {
			r, err := stacks.RenderApp(stacks.Input{Topo: topo, Site: s}, a)
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, "render/"+s.Name+"-"+a.Name+".yaml", r.Compose)
			d, err := stacks.Convert(context.Background(), stacks.Input{Topo: topo, Site: s}, r, stacks.ConvertOptions{References: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Services) != 1 {
				t.Fatalf("%s/%s: %d services", s.Name, a.Name, len(d.Services))
			}
			svc := d.Services[0]
			spec := svc.Spec
			if svc.Name != a.Name+"_"+a.Service || spec.Labels[stacks.LabelApp] != a.Name || spec.Labels[stacks.LabelStack] != a.Name {
				t.Errorf("%s/%s: service %s labels %v", s.Name, a.Name, svc.Name, spec.Labels)
			}
			if got, want := int(*spec.Mode.Replicated.Replicas), a.Sites[s.Name].Replicas; got != want {
				t.Errorf("%s/%s: %d replicas, want %d", s.Name, a.Name, got, want)
			}
			if got := spec.TaskTemplate.ContainerSpec.Image; got != a.Sites[s.Name].Image {
				t.Errorf("%s/%s: image %s", s.Name, a.Name, got)
			}
			var nets []string
			for _, n := range spec.TaskTemplate.Networks {
				nets = append(nets, n.Target)
			}
			wantNets := a.Name + "_default"
			if a.Port > 0 {
				wantNets = "app " + wantNets
			}
			if strings.Join(nets, " ") != wantNets {
				t.Errorf("%s/%s: networks %v, want %s", s.Name, a.Name, nets, wantNets)
			}
			if a.Name == "plain" && spec.TaskTemplate.RestartPolicy == nil {
				t.Errorf("%s: plain lost its restart policy", s.Name)
			}
		}
	}
}

// TestRefusals: each bad app is refused at load with ONE error naming the app's
// file (or the config layer that set the value), the key and the fix; nothing
// else is reported.
func TestRefusals(t *testing.T) {
	hello, err := os.ReadFile(filepath.Join(fixtures, "hello", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(oldNew ...string) map[string]string {
		body := string(hello)
		for i := 0; i < len(oldNew); i += 2 {
			if !strings.Contains(body, oldNew[i]) {
				t.Fatalf("fixture lacks %q", oldNew[i])
			}
			body = strings.Replace(body, oldNew[i], oldNew[i+1], 1)
		}
		return map[string]string{"hello/compose.yaml": body}
	}
	const other = "services:\n  b:\n    image: x/b:1\nx-sitectl:\n  port: 80\n  routes:\n    - path: %s\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		env   string
		set   []string
		file  string
		key   string
		msg   string
	}{
		{name: "named like a built-in stack", files: map[string]string{"kong/compose.yaml": "services:\n  k:\n    image: x/k:1\n"},
			file: "kong", msg: "named like a built-in stack"},
		{name: "bad app name", files: map[string]string{"Hello_1/compose.yaml": "services:\n  k:\n    image: x/k:1\n"},
			file: "Hello_1", msg: "lower case letters"},
		{name: "no compose file", files: map[string]string{"empty/README": "x"}, file: "empty", msg: "no compose file"},
		{name: "two apps claim one route", files: map[string]string{"hello/compose.yaml": string(hello), "other/compose.yaml": strings.Replace(other, "%s", "/hello", 1)},
			file: "other/compose.yaml", key: "x-sitectl.routes[0].path", msg: "already claimed by app hello"},
		{name: "route claims a built-in route", files: map[string]string{"other/compose.yaml": strings.Replace(other, "%s", "/api", 1)},
			file: "other/compose.yaml", key: "x-sitectl.routes[0].path", msg: "built-in django-api route"},
		{name: "route forwarded to a hub not running the app", files: edit("sites: all", "sites: spokes", "  site:\n    cloud:\n      replicas: 2\n", ""),
			file: "hello/compose.yaml", key: "x-sitectl.routes[1].at", msg: "does not run the app"},
		{name: "unknown site", files: edit("sites: all", "sites: [hub, mars]"),
			file: "hello/compose.yaml", key: "x-sitectl.sites", msg: `"mars" is not a site or role`},
		{name: "unknown role", files: edit("sites: all", "sites: edges"),
			file: "hello/compose.yaml", key: "x-sitectl.sites", msg: `"edges" is not a site or role`},
		{name: "override for an unknown site", files: edit("    cloud:\n      replicas: 2", "    mars:\n      replicas: 2"),
			file: "hello/compose.yaml", key: "x-sitectl.site.mars", msg: "not a site"},
		{name: "compose file docker/cli refuses", files: edit("      interval: 5s", "      interval: 5s\n      bogus: 1"),
			file: "hello/compose.yaml", msg: "docker/cli's compose loader refuses it"},
		{name: "not YAML", files: map[string]string{"bad/compose.yaml": "services: [\n"}, file: "bad/compose.yaml", msg: "not a compose file"},
		{name: "inline secret file", files: edit("x-sitectl:", "secrets:\n  token:\n    file: ./token.txt\nx-sitectl:"),
			file: "hello/compose.yaml", key: "secrets.token", msg: "an inline secret"},
		{name: "inline secret in environment", files: edit("      STANDIN_PORTS: \"8080\"", "      STANDIN_PORTS: \"8080\"\n      API_TOKEN: s3cr3t-value"),
			file: "hello/compose.yaml", key: "services.web.environment.API_TOKEN", msg: "an inline secret (value not shown)"},
		{name: "secret the sites do not name", files: edit("x-sitectl:", "secrets:\n  token:\n    file: secrets/hello-token\nx-sitectl:"),
			file: "hello/compose.yaml", key: "secrets.token", msg: `has no secret "hello-token"`},
		{name: "unknown x-sitectl key", files: edit("  port: 8080", "  port: 8080\n  replica: 3"),
			file: "hello/compose.yaml", key: "x-sitectl", msg: "field replica not found"},
		{name: "entry service unnamed among several", files: map[string]string{"two/compose.yaml": "services:\n  a:\n    image: x/a:1\n  b:\n    image: x/b:1\n"},
			file: "two/compose.yaml", key: "x-sitectl.service", msg: "has 2 services"},
		{name: "unknown failover", files: edit("    - path: /hello\n", "    - path: /hello\n      failover: hub\n"),
			file: "hello/compose.yaml", key: "x-sitectl.routes[0].failover", msg: `"hub": allowed: peers`},
		{name: "failover of a hub route", files: edit("      at: hub\n", "      at: hub\n      failover: peers\n"),
			file: "hello/compose.yaml", key: "x-sitectl.routes[1].failover", msg: "served by the hub only"},
		{name: "failover with readiness under no failover route", files: edit("    - path: /hello\n", "    - path: /hello\n      failover: peers\n"),
			file: "hello/compose.yaml", key: "x-sitectl.health.readiness", msg: `"/readyz" is under no route with failover: peers (/hello)`},
		{name: "failover without a probe path", files: edit("    - path: /hello\n", "    - path: /hello\n      failover: peers\n", "  health:\n    liveness: /healthz\n    readiness: /readyz\n", ""),
			file: "hello/compose.yaml", key: "x-sitectl.health.readiness", msg: "no readiness path"},
		{name: "unknown placement", files: edit("  port: 8080", "  port: 8080\n  placement: db-nodes"),
			file: "hello/compose.yaml", key: "x-sitectl.placement", msg: `"db-nodes": allowed: app-nodes`},
		{name: "mongo with the compose file's own MONGO_URI", files: edit("  port: 8080", "  port: 8080\n  mongo: true", "      STANDIN_PORTS: \"8080\"", "      STANDIN_PORTS: \"8080\"\n      MONGO_URI: mongodb://x/"),
			file: "hello/compose.yaml", key: "services.web.environment.MONGO_URI", msg: "is set by sitectl when x-sitectl.mongo is true"},
		{name: "inline secret in the canary's environment", files: edit("  port: 8080", "  port: 8080\n  canary: {image: x/hello:2, weight: 10, environment: {API_TOKEN: s3cr3t-value}}"),
			file: "hello/compose.yaml", key: "x-sitectl.canary.environment.API_TOKEN", msg: "an inline secret (value not shown)"},
		{name: "negative rate limit", files: edit("  port: 8080", "  port: 8080\n  rate_limit: -5"),
			file: "hello/compose.yaml", key: "x-sitectl.rate_limit", msg: "-5: requests per minute per client address"},
		{name: "negative rate limit at a site", files: edit("    cloud:\n      replicas: 2", "    cloud:\n      replicas: 2\n      rate_limit: -1"),
			file: "hello/compose.yaml", key: "x-sitectl.site.cloud.rate_limit", msg: "-1: requests per minute per client address"},
		{name: "rate limit in an environment of an app without routes", files: map[string]string{"other/compose.yaml": "services:\n  b:\n    image: x/b:1\nx-sitectl:\n  env: {dev: {rate_limit: 10}}\n"},
			file: "other/compose.yaml", key: "x-sitectl.env.dev.rate_limit", msg: "the app has none"},
		{name: "values rate limit not a number", files: map[string]string{"hello/compose.yaml": string(hello)}, set: []string{"douala:values.hello.rate_limit=lots"},
			file: "flag --set", key: "values.hello.rate_limit", msg: "lots: requests per minute"},
		{name: "unknown healthcheck key in an environment", files: edit("    staging:\n      replicas: 1", "    staging:\n      replicas: 1\n    dev:\n      healthcheck: {intervall: 5s}"),
			file: "hello/compose.yaml", key: "x-sitectl.env.dev.healthcheck.intervall", msg: "unknown healthcheck key (allowed: test, interval"},
		{name: "healthcheck test without a command", files: edit("    cloud:\n      replicas: 2", "    cloud:\n      replicas: 2\n      healthcheck: {test: [CMD]}"),
			file: "hello/compose.yaml", key: "x-sitectl.site.cloud.healthcheck.test", msg: "want a list such as [CMD, curl"},
		{name: "healthcheck interval not a duration", files: map[string]string{"hello/compose.yaml": string(hello)}, set: []string{"douala:values.hello.healthcheck.interval=often"},
			file: "flag --set", key: "values.hello.healthcheck.interval", msg: "often: want a duration such as 5s"},
		{name: "healthcheck test and disable in one layer", files: edit("    cloud:\n      replicas: 2", "    cloud:\n      replicas: 2\n      healthcheck: {test: [NONE], disable: true}"),
			file: "hello/compose.yaml", key: "x-sitectl.site.cloud.healthcheck", msg: "sets both test and disable"},
		{name: "healthcheck not a mapping", files: edit("    cloud:\n      replicas: 2", "    cloud:\n      replicas: 2\n      healthcheck: curl"),
			file: "hello/compose.yaml", key: "x-sitectl", msg: "cannot unmarshal"},
		{name: "route path without slash", files: edit("    - path: /hello\n", "    - path: hello\n"),
			file: "hello/compose.yaml", key: "x-sitectl.routes[0].path", msg: "starts with /"},
		{name: "production latest image", env: "production", files: edit("production: registry.example.org/hello:1.4.2", "production: registry.example.org/hello:latest"),
			file: "hello/compose.yaml", key: "x-sitectl.image", msg: "tagged latest"},
		{name: "production untagged image", env: "production", files: edit("production: registry.example.org/hello:1.4.2", "production: registry.example.org/hello"),
			file: "hello/compose.yaml", key: "x-sitectl.image", msg: "untagged"},
		{name: "start-first with a host-mode metrics port", env: "lab", files: edit("order: stop-first", "order: start-first"),
			file: "hello/compose.yaml", key: "services.web.deploy.update_config.order", msg: "cannot bind the metrics port 19180"},
		{name: "cpus not a number", files: edit("  port: 8080", "  port: 8080\n  resources: {limits: {cpus: half}}"),
			file: "hello/compose.yaml", key: "x-sitectl.resources.limits.cpus", msg: "not a number of CPUs"},
		{name: "memory not an amount", files: edit("  port: 8080", "  port: 8080\n  resources: {limits: {memory: lots}}"),
			file: "hello/compose.yaml", key: "x-sitectl.resources.limits.memory", msg: "not an amount of memory"},
		{name: "memory limit below Docker's minimum", files: edit("  port: 8080", "  port: 8080\n  resources: {limits: {memory: 4M}}"),
			file: "hello/compose.yaml", key: "x-sitectl.resources.limits.memory", msg: "smallest memory limit"},
		{name: "reservation above the limit", files: edit("  port: 8080", "  port: 8080\n  resources: {limits: {memory: 128M}, reservations: {memory: 1G}}"),
			file: "hello/compose.yaml", key: "x-sitectl.resources.reservations.memory", msg: "reserves more memory than the limit"},
		{name: "unknown resources key", files: edit("  port: 8080", "  port: 8080\n  resources: {limits: {gpus: 1}}"),
			file: "hello/compose.yaml", key: "x-sitectl", msg: "field gpus not found"},
		{name: "update order unknown", files: edit("  port: 8080", "  port: 8080\n  update: {order: sideways}"),
			file: "hello/compose.yaml", key: "x-sitectl.update.order", msg: "allowed: stop-first"},
		{name: "update delay not a duration", files: edit("  port: 8080", "  port: 8080\n  update: {delay: soon}"),
			file: "hello/compose.yaml", key: "x-sitectl.update.delay", msg: "not a duration"},
		{name: "update parallelism negative", files: edit("  port: 8080", "  port: 8080\n  update: {parallelism: -1}"),
			file: "hello/compose.yaml", key: "x-sitectl.update.parallelism", msg: "0 (all) or more"},
		{name: "rollback failure_action rollback", files: edit("  port: 8080", "  port: 8080\n  rollback: {failure_action: rollback}"),
			file: "hello/compose.yaml", key: "x-sitectl.rollback.failure_action", msg: "allowed: continue, pause"},
		{name: "x-sitectl start-first with a host-mode metrics port", env: "lab", files: edit("  port: 8080", "  port: 8080\n  update: {order: start-first}"),
			file: "hello/compose.yaml", key: "x-sitectl.update.order", msg: "cannot bind the metrics port 19180"},
		{name: "canary weight 0", files: edit("  port: 8080", "  port: 8080\n  canary: {image: x/hello:2, weight: 0}"),
			file: "hello/compose.yaml", key: "x-sitectl.canary.weight", msg: "from 1 to 99"},
		{name: "canary weight 100", files: edit("  port: 8080", "  port: 8080\n  canary: {image: x/hello:2, weight: 100}"),
			file: "hello/compose.yaml", key: "x-sitectl.canary.weight", msg: "from 1 to 99"},
		{name: "canary without image", files: edit("  port: 8080", "  port: 8080\n  canary: {weight: 10}"),
			file: "hello/compose.yaml", key: "x-sitectl.canary.image", msg: "runs another image"},
		{name: "canary of a site image the site lacks", files: edit("sites: all", "sites: hub", "  port: 8080", "  port: 8080\n  canary: {image: images.no-such, weight: 10}"),
			file: "hello/compose.yaml", key: "x-sitectl.image", msg: "names the site image no-such"},
		{name: "canary replicas 0", files: edit("    cloud:\n      replicas: 2", "    cloud:\n      replicas: 2\n      canary: {image: x/hello:2, weight: 10, replicas: 0}"),
			file: "hello/compose.yaml", key: "x-sitectl.site.cloud.canary.replicas", msg: "at least 1 replica"},
		{name: "canary without routes", files: map[string]string{"other/compose.yaml": "services:\n  b:\n    image: x/b:1\nx-sitectl:\n  port: 80\n  canary: {image: x/b:2, weight: 5}\n"},
			file: "other/compose.yaml", key: "x-sitectl.canary", msg: "the app has none"},
		{name: "canary of a global service", files: map[string]string{"other/compose.yaml": "services:\n  b:\n    image: x/b:1\n    deploy: {mode: global}\nx-sitectl:\n  port: 80\n  routes: [{path: /b}]\n  env: {dev: {canary: {image: x/b:2, weight: 5}}}\n"},
			file: "other/compose.yaml", key: "x-sitectl.env.dev.canary", msg: "is global"},
		{name: "canary name taken", files: map[string]string{"other/compose.yaml": "services:\n  b:\n    image: x/b:1\n  b-canary:\n    image: x/b:1\nx-sitectl:\n  service: b\n  port: 80\n  routes: [{path: /b}]\n  canary: {image: x/b:2, weight: 5}\n"},
			file: "other/compose.yaml", key: "x-sitectl.canary", msg: "already has a service b-canary"},
		{name: "production canary untagged", env: "production", files: edit("  port: 8080", "  port: 8080\n  canary: {image: registry.example.org/hello, weight: 10}"),
			file: "hello/compose.yaml", key: "x-sitectl.image", msg: "untagged"},
		{name: "unknown values key", files: map[string]string{"hello/compose.yaml": string(hello)}, set: []string{"douala:values.hello.replica=2"},
			file: "flag --set", key: "values.hello.replica", msg: "unknown key for app hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == "" {
				env = "dev"
			}
			topo := stacktest.Load(t, env)
			if tc.set != nil {
				var err error
				topo, err = sites.Load(sites.Options{Dir: topo.Dir, Env: env, Environ: []string{}, Set: tc.set, KnownStacks: append([]string{"hello"}, sites.KnownStacks...)})
				if err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			for name, body := range tc.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo, Environ: []string{}})
			if list != nil {
				t.Errorf("apps returned despite problems: %v", list)
			}
			if len(ps) != 1 {
				t.Fatalf("%d problems, want 1:\n%v", len(ps), ps)
			}
			p := ps[0]
			if !strings.Contains(p.File, tc.file) || p.Key != tc.key || !strings.Contains(p.Message, tc.msg) {
				t.Errorf("problem %s\nwant file ~%q, key %q, message ~%q", p, tc.file, tc.key, tc.msg)
			}
			if strings.Contains(p.String(), "s3cr3t-value") {
				t.Errorf("problem shows the secret value: %s", p)
			}
		})
	}
}
