package sites

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes as a site file and as an environment overlay: the
// loader may refuse them but must never panic, and a refusal always says where.
// The files are served from memory (no disk per run). The seed corpus (the example
// files and some broken ones) runs in every `go test`.
func FuzzLoad(f *testing.F) {
	// Small seeds on purpose: every new input the fuzzer finds is minimized first,
	// and minimizing a large input takes seconds in which nothing else runs. The
	// example files themselves are loaded by every other test.
	f.Add([]byte("role: spoke\nlan: 10.20.0.0/24\nnodes: [{name: y1, role: manager, address: 10.20.0.11}]\ntunnel: {peers: [cloud]}\n"),
		[]byte("all: {values: {django-api: {replicas: 1}}}\nsites: {cloud: {deploy: {timeout: 10m}}}\n"))
	for _, seed := range []string{
		"", "null", "[]", "- a\n- b", "role: [x", "nodes: 5", "nodes: [1, 2]", "nodes:\n  - {labels: 7}",
		"networks: {edge: 1}", "tunnel: {psk: secret}", "postgres: {password: [1]}", "secrets: {a: b}",
		"deploy: {timeout: forever}", "mongo: {members: [{votes: x}]}", "values: {kong: 3}", "images: [a]",
		"? [a, b]\n: c", "a: &x [*x]", "lan: 10.0.0.0/33", "engine: {host: 'unix://'}",
		"a: &a [1]\nb: &b [*a, *a]\nc: [*b, *b]", "<<: {role: hub}", "role: hub\nrole: spoke", "stacks: postgres, kong",
		"tunnel: {cert_lifetime: -1h}", "swarm: {subnet_size: 40}", "engine: {host: 'tcp://[::1'}", "all: {deploy: {timout: 1m}}",
		"sites: {yaounde: {values: {django-api: {replicas: -2}}}}", "\t", "%YAML 1.1\n---\na: 1", "a: !!binary aGk=",
	} {
		f.Add([]byte(seed), []byte(seed))
	}
	base := fstest.MapFS{}
	for _, n := range []string{"defaults.yaml", "douala.yaml", "cloud.yaml", "schema.sql"} {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		base[n] = &fstest.MapFile{Data: b}
	}
	f.Fuzz(func(t *testing.T, site, env []byte) {
		fsys := fstest.MapFS{"yaounde.yaml": {Data: site}, "env/dev.yaml": {Data: env}}
		for k, v := range base {
			fsys[k] = v
		}
		topo, err := Load(Options{Dir: "sites", FS: fsys, Env: "dev", Environ: []string{}})
		if err == nil && topo == nil {
			t.Fatal("nil topology without an error")
		}
		if err == nil {
			return
		}
		ps, ok := err.(Problems)
		if !ok {
			t.Fatalf("not a list of problems: %v", err)
		}
		for _, p := range ps {
			if p.Message == "" {
				t.Fatalf("empty message: %+v", p)
			}
			if p.File == "" && p.Key == "" {
				t.Fatalf("a problem that names neither its source nor its key: %+v", p)
			}
			for _, jargon := range []string{"mapstructure", "strconv.", "cannot unmarshal", "interface {}", "map[string]"} {
				if strings.Contains(p.Message, jargon) {
					t.Fatalf("Go jargon in %q", p.String())
				}
			}
		}
	})
}

// FuzzSet feeds arbitrary --set values to the flag parser and the loader: never a
// panic, every refusal names the flag, and a value set on a secret-like key never
// appears in any message.
func FuzzSet(f *testing.F) {
	for _, seed := range []string{
		"deploy.timeout=10m", "deploy.timout=1m", "douala:deploy.timeout=3m", "garoua:deploy.timeout=1m", "=x", "x", "",
		"values.django-api.replicas=-2", "values.django-api.replicas=many", "stacks=postgres, kong", "stacks=",
		"postgres.password=hunter2secret", "postgres.password.env=PGPASS", "tunnel.psk=abcd1234", "values.kong.admin_token=t0k3nvalue",
		"tunnel.cert_lifetime=-1h", "swarm.subnet_size=40", "engine.host=tcp://[::1", "nodes=x", "deploy=1", "a..b=1", ".a=1",
		"images.kong=kong:9", "networks.app.subnet=10.0.0.0/8", "mongo.members=1", "DEPLOY.TIMEOUT=1m", "douala:=1",
	} {
		f.Add(seed)
	}
	base := fstest.MapFS{}
	for _, n := range []string{"defaults.yaml", "douala.yaml", "yaounde.yaml", "cloud.yaml", "schema.sql", "env/dev.yaml"} {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		base[n] = &fstest.MapFile{Data: b}
	}
	f.Fuzz(func(t *testing.T, set string) {
		_, err := Load(Options{Dir: "sites", FS: base, Env: "dev", Environ: []string{}, Set: []string{set}})
		if err == nil {
			return
		}
		ps, ok := err.(Problems)
		if !ok {
			t.Fatalf("not a list of problems: %v", err)
		}
		key, val, _ := strings.Cut(set, "=")
		for _, p := range ps {
			if p.File == "" && p.Key == "" {
				t.Fatalf("a problem that names neither its source nor its key: %+v", p)
			}
			if isSensitive(key) && len(val) >= 6 && !strings.Contains(strings.ToLower(key), strings.ToLower(val)) &&
				!strings.Contains(mustRead(t, "defaults.yaml")+mustRead(t, "douala.yaml"), val) && strings.Contains(p.String(), val) {
				t.Fatalf("the value of secret-like key %s shows in %q", key, p.String())
			}
		}
	})
}
