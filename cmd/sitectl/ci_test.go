package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ciRepo lays out a repository root with the example config in sites/ and makes it
// the working directory, as `sitectl ci generate` is run from the repository root.
func ciRepo(t *testing.T) {
	t.Helper()
	root := t.TempDir()
	if err := os.Rename(exampleConfig(t, nil), filepath.Join(root, "sites")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
}

func ciGolden(t *testing.T, env string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "ci", "testdata", env+".gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCIGenerate(t *testing.T) {
	dev, production := ciGolden(t, "dev"), ciGolden(t, "production")
	ciRepo(t)
	// A secret set while generating must not reach the output.
	environ := []string{"SITECTL_PG_PASSWORD=pg-V4lue-not-for-output", "SITECTL_ENV=dev"}

	out, _, err := run(t, environ, "ci", "generate")
	if err != nil {
		t.Fatal(err)
	}
	if out != dev {
		t.Error("`sitectl ci generate` (SITECTL_ENV=dev) differs from ci/testdata/dev.gitlab-ci.yml")
	}
	if strings.Contains(out, "pg-V4lue") {
		t.Error("a secret value reached the pipeline")
	}

	out, stderr, err := run(t, environ, "ci", "generate", "--env", "production", "--out", ".gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(".gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != production || out != "" || !strings.Contains(stderr, "✓ write .gitlab-ci.yml") {
		t.Errorf("--out: file matches golden: %v, stdout %q, stderr %q", string(b) == production, out, stderr)
	}

	out, _, err = run(t, environ, "ci", "lint", ".gitlab-ci.yml", filepath.Join("..", "..", ".gitlab-ci.yml"))
	if err == nil {
		// the second path is relative to the old working dir; only the first exists here
		t.Errorf("lint of a missing file passed: %s", out)
	}
	if !strings.Contains(out, "✓ .gitlab-ci.yml") {
		t.Errorf("lint did not pass the generated file: %q", out)
	}
}

func TestCIGenerateErrors(t *testing.T) {
	ciRepo(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ci", "generate", "--env", "qa"}, `unknown environment "qa" (known: dev, production, staging)`},
		{[]string{"ci", "generate", "--env", "dev", "--set", "douala:engine.host=unix:///var/run/docker.sock"}, "site douala: engine.host unix:///var/run/docker.sock"},
		{[]string{"ci", "generate", "--env", "dev", "--config-dir", exampleConfig(t, nil)}, "outside the current directory"},
		{[]string{"ci", "check", "--env", "dev"}, "--site"},
		{[]string{"ci", "check", "--env", "dev", "--site", "garoua"}, `no site "garoua"`},
	}
	for _, c := range cases {
		_, _, err := run(t, nil, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}

func TestCIVariablesAndCheck(t *testing.T) {
	ciRepo(t)
	const secret = "Mongo-K3yfile-Value"
	out, _, err := run(t, []string{"SITECTL_MONGO_KEYFILE=" + secret}, "ci", "variables", "--env", "staging", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var vars []struct {
		Name   string `json:"name"`
		File   bool   `json:"file"`
		Secret bool   `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &vars); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	byName := map[string]bool{}
	for _, v := range vars {
		byName[v.Name] = v.Secret
	}
	for _, name := range []string{"SITECTL_PG_PASSWORD", "SITECTL_MONGO_KEYFILE", "SSH_KEY_DOUALA", "DOCKER_TLS_KEY_CLOUD"} {
		if secret, ok := byName[name]; !ok || !secret {
			t.Errorf("%s: listed %v, secret %v", name, ok, secret)
		}
	}
	if strings.Contains(out, secret) {
		t.Error("ci variables printed a value")
	}

	// In a job: douala with nothing set fails and names what is missing.
	out, _, err = run(t, []string{"SITECTL_MONGO_KEYFILE=" + secret}, "ci", "check", "--env", "staging", "--site", "douala")
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("check passed with variables missing: %v", err)
	}
	if !strings.Contains(err.Error(), "SSH_KEY_DOUALA") || !strings.Contains(out, "✓ SITECTL_MONGO_KEYFILE") || strings.Contains(out+err.Error(), secret) {
		t.Errorf("check output %q, error %v", out, err)
	}

	// Everything set: passes.
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{"DOCKER_HOST_DOUALA=ssh://ops@douala.ci", "SSH_KEY_DOUALA=" + key, "SSH_KNOWN_HOSTS_DOUALA=" + key,
		"SITECTL_PG_PASSWORD=x", "SITECTL_MONGO_KEYFILE=" + secret, "SITECTL_DJANGO_SECRET_KEY=y"}
	out, _, err = run(t, environ, "ci", "check", "--env", "staging", "--site", "douala")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Count(out, "✓") != 6 || strings.Contains(out, secret) {
		t.Errorf("check output:\n%s", out)
	}
}
