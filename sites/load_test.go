package sites

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayering sets deploy.timeout at every layer in turn; each layer must override
// the ones before it, and Origin must name the layer that won.
func TestLayering(t *testing.T) {
	t.Parallel()
	type layerSet struct {
		files   map[string]string
		environ []string
		set     []string
	}
	base := map[string]string{
		"defaults.yaml": mustRead(t, "defaults.yaml") + "\n",
		"env/dev.yaml":  "all: {}\n",
	}
	withFiles := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	doualaWith := func(line string) string { return mustRead(t, "douala.yaml") + line }
	tests := []struct {
		name       string
		in         layerSet
		want       string
		wantOrigin string
		everySite  bool
	}{
		{"defaults", layerSet{files: withFiles(nil)}, "5m0s", "defaults.yaml", true},
		{"site file", layerSet{files: withFiles(map[string]string{"douala.yaml": doualaWith("deploy:\n  timeout: 6m\n")})}, "6m0s", "douala.yaml", false},
		{"env overlay all", layerSet{files: withFiles(map[string]string{
			"douala.yaml":  doualaWith("deploy:\n  timeout: 6m\n"),
			"env/dev.yaml": "all:\n  deploy:\n    timeout: 7m\n"})}, "7m0s", "env/dev.yaml (all)", true},
		{"env overlay site", layerSet{files: withFiles(map[string]string{
			"douala.yaml":  doualaWith("deploy:\n  timeout: 6m\n"),
			"env/dev.yaml": "all:\n  deploy:\n    timeout: 7m\nsites:\n  douala:\n    deploy:\n      timeout: 8m\n"})}, "8m0s", "env/dev.yaml (sites.douala)", false},
		{"SITECTL_ variable", layerSet{files: withFiles(map[string]string{
			"env/dev.yaml": "sites:\n  douala:\n    deploy:\n      timeout: 8m\n"}),
			environ: []string{"SITECTL_DEPLOY_TIMEOUT=9m"}}, "9m0s", "environment variable SITECTL_DEPLOY_TIMEOUT", true},
		{"SITECTL_<SITE>__ variable", layerSet{files: withFiles(nil),
			environ: []string{"SITECTL_DOUALA__DEPLOY_TIMEOUT=10m", "SITECTL_DEPLOY_TIMEOUT=9m"}}, "10m0s", "environment variable SITECTL_DOUALA__DEPLOY_TIMEOUT", false},
		{"flag for every site", layerSet{files: withFiles(nil),
			environ: []string{"SITECTL_DOUALA__DEPLOY_TIMEOUT=10m"}, set: []string{"deploy.timeout=11m"}}, "11m0s", "flag --set deploy.timeout", true},
		{"flag for one site", layerSet{files: withFiles(nil),
			set: []string{"douala:deploy.timeout=12m", "deploy.timeout=11m"}}, "12m0s", "flag --set douala:deploy.timeout", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyConfig(t, tt.in.files)
			environ := tt.in.environ
			if environ == nil {
				environ = []string{}
			}
			topo, err := Load(Options{Dir: dir, Env: "dev", Environ: environ, Set: tt.in.set})
			if err != nil {
				t.Fatal(err)
			}
			got := topo.Site("douala").Deploy.Timeout.D().String()
			if got != tt.want {
				t.Errorf("deploy.timeout = %s, want %s", got, tt.want)
			}
			origin := topo.Origin("douala", "deploy.timeout")
			if !strings.HasSuffix(origin, tt.wantOrigin) {
				t.Errorf("origin = %q, want it to end with %q", origin, tt.wantOrigin)
			}
			// Site-specific layers must not leak into other sites; layers for every
			// site must reach them.
			y := topo.Site("yaounde").Deploy.Timeout.D().String()
			if tt.everySite && y != tt.want {
				t.Errorf("yaounde deploy.timeout = %s, want %s (layer applies to every site)", y, tt.want)
			}
			if !tt.everySite && y == tt.want {
				t.Errorf("yaounde got douala's value %s", y)
			}
		})
	}
}

func TestEnvListsAndMaps(t *testing.T) {
	t.Parallel()
	dir := copyConfig(t, nil)
	topo, err := Load(Options{Dir: dir, Env: "dev", Environ: []string{
		"SITECTL_YAOUNDE__STACKS=postgres,django-api",
		"SITECTL_IMAGES_KONG=kong:9.9",
		"SITECTL_PG_PASSWORD=not-a-config-key",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(topo.Site("yaounde").Stacks, ","); got != "postgres,django-api" {
		t.Errorf("yaounde stacks = %s", got)
	}
	if got := strings.Join(topo.Site("douala").Stacks, ","); !strings.Contains(got, "kong") {
		t.Errorf("douala stacks changed: %s", got)
	}
	for _, s := range topo.Sites {
		if s.Images["kong"] != "kong:9.9" {
			t.Errorf("%s images.kong = %q", s.Name, s.Images["kong"])
		}
	}
}

func TestTopology(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		set       []string
		wantLinks string
	}{
		{"hub and spoke", nil, "douala-cloud,yaounde-cloud"},
		{"direct link", []string{"douala:tunnel.peers=cloud,yaounde"}, "douala-cloud,yaounde-cloud,douala-yaounde(direct)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo, err := Load(Options{Dir: copyConfig(t, nil), Env: "production", Environ: []string{}, Set: tc.set})
			if err != nil {
				t.Fatal(err)
			}
			var links []string
			for _, l := range topo.Links {
				n := l.Name()
				if l.Direct {
					n += "(direct)"
				}
				links = append(links, n)
			}
			if got := strings.Join(links, ","); got != tc.wantLinks {
				t.Errorf("links = %s, want %s", got, tc.wantLinks)
			}
			if topo.Hub != "cloud" {
				t.Errorf("hub = %s", topo.Hub)
			}
			if l, err := topo.Link("cloud-douala"); err != nil || l.Name() != "douala-cloud" {
				t.Errorf("Link(cloud-douala) = %v, %v", l, err)
			}
			if _, err := topo.Link("douala-mars"); err == nil {
				t.Error("unknown link accepted")
			}
			var flows []string
			for _, f := range topo.Flows {
				flows = append(flows, f.From+">"+f.To+":"+f.Filter)
			}
			want := "douala>cloud:site = 'douala',cloud>douala:site <> 'douala',yaounde>cloud:site = 'yaounde',cloud>yaounde:site <> 'yaounde'"
			if got := strings.Join(flows, ","); got != want {
				t.Errorf("flows = %s\nwant    %s", got, want)
			}
			if got := topo.Site("cloud").Values["django-api"]["replicas"]; got != 3 {
				t.Errorf("production cloud replicas = %v, want 3 (env overlay sites.cloud)", got)
			}
		})
	}
}

// TestValidation covers every failure the loader must refuse (or warn about), each
// naming the file and key.
func TestValidation(t *testing.T) {
	t.Parallel()
	douala := mustRead(t, "douala.yaml")
	cloud := mustRead(t, "cloud.yaml")
	tests := []struct {
		name     string
		files    map[string]string
		env      string
		severity Severity
		file     string
		key      string
		msg      string
	}{
		{"unknown key", map[string]string{"douala.yaml": douala + "deploy:\n  timout: 5m\n"}, "dev", SevError, "douala.yaml", "deploy.timout", "unknown key"},
		{"unknown key in overlay", map[string]string{"env/dev.yaml": "all:\n  imagez: {}\n"}, "dev", SevError, "env/dev.yaml", "all.imagez", "unknown key"},
		{"overlapping LANs", map[string]string{"douala.yaml": strings.Replace(douala, "lan: 10.10.0.0/24", "lan: 10.20.0.0/23", 1)}, "dev", SevError, "yaounde.yaml", "lan", "overlaps"},
		{"overlay overlaps LAN", map[string]string{"douala.yaml": strings.Replace(douala, "10.111.2.0/24", "10.10.0.0/25", 1)}, "dev", SevError, "douala.yaml", "networks.data.subnet", "overlaps"},
		{"peer not a site", map[string]string{"douala.yaml": strings.Replace(douala, "peers: [cloud]", "peers: [cloud, garoua]", 1)}, "dev", SevError, "douala.yaml", "tunnel.peers", `peer "garoua" is not a site`},
		{"no hub", map[string]string{"cloud.yaml": strings.Replace(cloud, "role: hub", "role: spoke", 1)}, "dev", SevError, "", "role", "no site has role hub"},
		{"two hubs", map[string]string{"douala.yaml": strings.Replace(douala, "role: spoke", "role: hub", 1)}, "dev", SevError, "douala.yaml", "role", "all hubs"},
		{"unknown stack", map[string]string{"douala.yaml": strings.Replace(douala, "stacks: [postgres,", "stacks: [redis, postgres,", 1)}, "dev", SevError, "douala.yaml", "stacks", `stack "redis" does not exist`},
		{"inline password", map[string]string{"douala.yaml": strings.Replace(douala, "postgres:\n  host: 10.10.0.12\n", "postgres:\n  host: 10.10.0.12\n  password: hunter2\n", 1)}, "dev", SevError, "douala.yaml", "postgres.password", "secret written inline is refused"},
		{"inline secret in values", map[string]string{"env/dev.yaml": "all:\n  values:\n    kong:\n      admin_token: abc\n"}, "dev", SevError, "env/dev.yaml", "all.values.kong.admin_token", "inline"},
		{"even mongo voters", map[string]string{"douala.yaml": strings.Replace(douala, "  members:\n    - host: 10.10.0.12:27017\n", "  members:\n    - host: 10.10.0.12:27017\n    - host: 10.10.0.11:27017\n", 1)}, "dev", SevWarning, "", "mongo.members", "4 voting members (even)"},
		{"missing overlay", nil, "qa", SevError, "env/qa.yaml", "", `environment overlay "qa" is missing`},
		{"bad endpoint mode", map[string]string{"env/dev.yaml": "all:\n  deploy:\n    endpoint_mode: roundrobin\n"}, "dev", SevError, "env/dev.yaml (all)", "deploy.endpoint_mode", "allowed: vip, dnsrr"},
		{"encryption off without reason", map[string]string{"env/dev.yaml": "all:\n  networks:\n    data: {encrypted: false}\n"}, "dev", SevError, "env/dev.yaml (all)", "networks.data.encrypted", "without a reason"},
		{"wrong type", map[string]string{"douala.yaml": strings.Replace(douala, "postgres:\n  host: 10.10.0.12\n", "postgres:\n  host: 10.10.0.12\n  port: lots\n", 1)}, "dev", SevError, "douala.yaml", "postgres.port", `is "lots", not a whole number`},
		{"yaml syntax", map[string]string{"yaounde.yaml": "role: [spoke\n"}, "dev", SevError, "yaounde.yaml", "", "YAML syntax error: line 1"},
		{"spoke without hub link", map[string]string{"douala.yaml": strings.Replace(douala, "peers: [cloud]", "peers: [yaounde]", 1), "cloud.yaml": strings.Replace(cloud, "peers: [douala, yaounde]", "peers: [yaounde]", 1)}, "dev", SevError, "douala.yaml", "tunnel.peers", "no tunnel to the hub"},
		{"site named in overlay does not exist", map[string]string{"env/dev.yaml": "sites:\n  garoua: {}\n"}, "dev", SevError, "env/dev.yaml", "sites.garoua", "not a site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyConfig(t, tt.files)
			topo, err := Load(Options{Dir: dir, Env: tt.env, Environ: []string{}})
			var ps Problems
			if tt.severity == SevError {
				if !errors.As(err, &ps) {
					t.Fatalf("want a validation error, got err=%v", err)
				}
			} else {
				if err != nil {
					t.Fatalf("want only a warning, got %v", err)
				}
				ps = topo.Warnings
			}
			for _, p := range ps {
				if p.Severity == tt.severity && strings.HasSuffix(p.File, tt.file) && p.Key == tt.key && strings.Contains(p.Message, tt.msg) {
					return
				}
			}
			t.Errorf("no %s problem with file %q key %q message containing %q; got:\n%v", tt.severity, tt.file, tt.key, tt.msg, ps)
		})
	}
}

// TestAllProblemsAtOnce: several independent mistakes are all reported in one run.
func TestAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	douala := mustRead(t, "douala.yaml")
	douala = strings.Replace(douala, "peers: [cloud]", "peers: [cloud, garoua]", 1)
	douala = strings.Replace(douala, "stacks: [postgres,", "stacks: [redis, postgres,", 1)
	douala = strings.Replace(douala, "postgres:\n  host: 10.10.0.12\n", "postgres:\n  host: 10.10.0.12\n  password: hunter2\n", 1)
	douala += "colour: blue\n"
	_, err := Load(Options{Dir: copyConfig(t, map[string]string{"douala.yaml": douala}), Env: "dev", Environ: []string{}})
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want problems, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"colour: unknown key", `"garoua" is not a site`, `"redis" does not exist`, "postgres.password: a secret written inline"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("the inline secret's value leaked into the error:\n%s", msg)
	}
}

func TestSetRefusesSecrets(t *testing.T) {
	t.Parallel()
	_, err := Load(Options{Dir: copyConfig(t, nil), Env: "dev", Environ: []string{}, Set: []string{"postgres.password=hunter2"}})
	if err == nil || !strings.Contains(err.Error(), "cannot carry a secret") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load(Options{Dir: copyConfig(t, nil), Env: "dev", Environ: []string{}, Set: []string{"postgres.password.env=OTHER_VAR"}}); err != nil {
		t.Fatalf("a reference by --set must be allowed: %v", err)
	}
}

func TestSecretRefResolve(t *testing.T) {
	t.Setenv("SITECTL_TEST_SECRET", "s3cr3t")
	if b, err := (SecretRef{Env: "SITECTL_TEST_SECRET"}).Resolve(); err != nil || string(b) != "s3cr3t" {
		t.Fatalf("env: %q %v", b, err)
	}
	_, err := (SecretRef{Env: "SITECTL_TEST_UNSET_XYZ"}).Resolve()
	if err == nil || !strings.Contains(err.Error(), "SITECTL_TEST_UNSET_XYZ is not set") {
		t.Fatalf("unset env: %v", err)
	}
	if _, err := (SecretRef{File: "/nonexistent/x"}).Resolve(); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestSecretRefResolveLine(t *testing.T) {
	t.Setenv("SITECTL_TEST_LINE", "pw-with\nbreak")
	_, err := (SecretRef{Env: "SITECTL_TEST_LINE"}).ResolveLine()
	if err == nil || !strings.Contains(err.Error(), "env:SITECTL_TEST_LINE holds a line break") || strings.Contains(err.Error(), "pw-with") {
		t.Fatalf("a line break: %v", err)
	}
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("one-line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := (SecretRef{File: f}).ResolveLine(); err != nil || string(b) != "one-line" {
		t.Fatalf("a file's final newline is not part of the value: %q %v", b, err)
	}
}

func TestResolveEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, EnvDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, EnvDir, "lab.yaml"), "all: {}\n"); err != nil {
		t.Fatal(err)
	}
	if got := ResolveEnv("", dir, nil); got != "dev" {
		t.Errorf("default = %s", got)
	}
	if err := writeFile(dir+"/"+CurrentEnvFile, "lab\n"); err != nil {
		t.Fatal(err)
	}
	if got := ResolveEnv("", dir, nil); got != "lab" {
		t.Errorf(".sitectl-env = %s", got)
	}
	if got := ResolveEnv("", dir, []string{"SITECTL_ENV=staging"}); got != "staging" {
		t.Errorf("SITECTL_ENV = %s", got)
	}
	if got := ResolveEnv("production", dir, []string{"SITECTL_ENV=staging"}); got != "production" {
		t.Errorf("flag = %s", got)
	}
}

func TestDockerSecretReferenceAccepted(t *testing.T) {
	t.Parallel()
	dir := copyConfig(t, map[string]string{"env/dev.yaml": "all:\n  secrets:\n    django-secret-key: {docker_secret: django-key}\n"})
	topo, err := Load(Options{Dir: dir, Env: "dev", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := topo.Site("douala").Secrets["django-secret-key"].String(); got != "docker-secret:django-key" {
		t.Errorf("secret ref = %s", got)
	}
}
