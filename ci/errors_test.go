package ci

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

func TestUnknownEnvironment(t *testing.T) {
	dir := copyConfig(t, nil)
	err := CheckEnv(dir, "qa")
	if err == nil {
		t.Fatal("unknown environment accepted")
	}
	for _, s := range []string{`"qa"`, "known: dev, production, staging", "--env", "env/qa.yaml"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %v", s, err)
		}
	}
	if err := CheckEnv(dir, ""); err == nil || !strings.Contains(err.Error(), "dev, production, staging") {
		t.Errorf("empty environment: %v", err)
	}
	if err := CheckEnv(t.TempDir(), "dev"); err == nil || !strings.Contains(err.Error(), "no environment overlays") {
		t.Errorf("config dir without overlays: %v", err)
	}
	for _, env := range envs {
		if err := CheckEnv(dir, env); err != nil {
			t.Errorf("%s: %v", env, err)
		}
	}
}

// A site a runner cannot reach, or a secret a runner cannot read, stops generation
// with one message per problem naming the site, the setting and the fix.
func TestSitesCIcannotReach(t *testing.T) {
	cases := []struct {
		name string
		set  []string
		want []string
	}{
		{"unix socket", []string{"douala:engine.host=unix:///var/run/docker.sock"},
			[]string{"site douala", "unix:///var/run/docker.sock", "local socket", "ssh://user@host", "DOCKER_HOST_DOUALA"}},
		{"docker context", []string{"yaounde:engine.host=", "yaounde:engine.context=yaounde-prod"},
			[]string{"site yaounde", `engine.context "yaounde-prod"`, "set engine.host"}},
		{"tcp without TLS", []string{"cloud:engine.tls_verify=false"},
			[]string{"site cloud", "plain TCP without TLS", "tls_verify: true"}},
		{"secret from a file", []string{"douala:postgres.password.file=/run/secrets/pg"},
			[]string{"site douala", "postgres.password", "/run/secrets/pg", "{env: NAME}"}},
		{"two sites at once", []string{"douala:engine.host=unix:///run/d.sock", "cloud:engine.tls_verify=false"},
			[]string{"site douala", "site cloud"}},
	}
	dir := copyConfig(t, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topo, err := sites.Load(sites.Options{Dir: dir, Env: "staging", Environ: []string{}, Set: c.set})
			if err != nil {
				t.Fatalf("the config loader refuses the setting: %v", err)
			}
			_, err = Render(topo, Options{})
			if err == nil {
				t.Fatal("generated a pipeline for a site CI cannot reach")
			}
			for _, s := range c.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
			if _, err := Variables(topo); err == nil {
				t.Error("ci variables accepted it")
			}
		})
	}
}

// The config loader refuses a site with no endpoint at all; a topology built another
// way (a test, a future loader) still gets a clear error rather than a broken job.
func TestSiteWithoutEndpoint(t *testing.T) {
	topo := load(t, copyConfig(t, nil), "dev", nil)
	s := topo.Site("yaounde")
	s.Engine = sites.Engine{}
	_, err := Render(topo, Options{})
	if err == nil {
		t.Fatal("generated a pipeline for a site without an endpoint")
	}
	for _, want := range []string{"site yaounde", "no Docker endpoint configured", "set engine.host for yaounde", "DOCKER_HOST_YAOUNDE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
