package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ciRepo lays out a repository root like sitectl's own (its go.mod, the example
// config in sites/) and makes it the working directory, as `sitectl ci generate` is
// run from the repository root: its pipelines build sitectl from source.
func ciRepo(t *testing.T) {
	t.Helper()
	root := t.TempDir()
	if err := os.Rename(exampleConfig(t, nil), filepath.Join(root, "sites")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module github.com/sitectl/sitectl\n"), 0o644); err != nil {
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
	written := string(b)
	if out != "" || !strings.Contains(stderr, "✓ write .gitlab-ci.yml") {
		t.Errorf("--out: stdout %q, stderr %q", out, stderr)
	}
	// The written file is the stdout pipeline plus a drift check of that very file.
	for _, s := range []string{"validate:production:pipeline:", "bin/sitectl ci generate --env production --check .gitlab-ci.yml", "sitectl ci generate --env production --out .gitlab-ci.yml"} {
		if !strings.Contains(written, s) {
			t.Errorf("written pipeline lacks %q", s)
		}
	}
	if strings.Contains(written, "pg-V4lue") || !strings.Contains(written, "deploy:production:douala:") || len(written) <= len(production) {
		t.Error("written pipeline is not the production pipeline")
	}

	out, _, err = run(t, environ, "ci", "generate", "--env", "production", "--check", ".gitlab-ci.yml")
	if err != nil || !strings.Contains(out, "✓ .gitlab-ci.yml matches") {
		t.Fatalf("--check right after --out: %v %q", err, out)
	}
	// The sites change (a new replica count changes nothing in CI; a new endpoint does).
	_, _, err = run(t, environ, "ci", "generate", "--env", "production", "--check", ".gitlab-ci.yml", "--set", "douala:engine.host=ssh://ops@10.10.0.99")
	if err == nil || !strings.Contains(err.Error(), ".gitlab-ci.yml is out of date with the configuration of production") ||
		!strings.Contains(err.Error(), "regenerate it with: sitectl ci generate --env production --out .gitlab-ci.yml") {
		t.Errorf("--check after a change: %v", err)
	}

	out, _, err = run(t, environ, "ci", "lint", ".gitlab-ci.yml", "missing.yml")
	if err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Errorf("lint of a missing file: %v", err)
	}
	if !strings.Contains(out, "✓ .gitlab-ci.yml") {
		t.Errorf("lint did not pass the generated file: %q", out)
	}
	if err := os.WriteFile("bad.yml", []byte("job:\n  script: [x]\n  when: sometimes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, nil, "ci", "lint", "-o", "json", ".gitlab-ci.yml", "bad.yml")
	var results []lintResult
	if jerr := json.Unmarshal([]byte(out), &results); jerr != nil || err == nil || len(results) != 2 ||
		!results[0].Valid || results[1].Valid || !strings.Contains(results[1].Error, "schema") {
		t.Errorf("lint -o json: %v %v\n%s", err, jerr, out)
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

	// Everything set: passes. What to set comes from the check's own JSON.
	out, _, _ = run(t, nil, "ci", "check", "--env", "staging", "--site", "douala", "--output", "json")
	var results []struct {
		Name    string `json:"name"`
		File    bool   `json:"file"`
		Prefix  string `json:"prefix"`
		Default string `json:"default"`
		OK      bool   `json:"ok"`
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) < 6 {
		t.Fatalf("check --output json: %v\n%s", err, out)
	}
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	var environ []string
	for _, r := range results {
		if r.OK != (r.Default != "") {
			t.Errorf("%s: ok %v with nothing set, default %q: only a variable with a default may be unset", r.Name, r.OK, r.Default)
		}
		val := secret
		switch {
		case r.File:
			val = key
		case r.Prefix != "":
			val = r.Prefix + "douala.ci"
		}
		environ = append(environ, r.Name+"="+val)
	}
	out, _, err = run(t, environ, "ci", "check", "--env", "staging", "--site", "douala")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Count(out, "✓") != len(results) || strings.Contains(out, secret) {
		t.Errorf("check output:\n%s", out)
	}
}

// `ci variables` and `ci check` agree on which variables are optional: with nothing
// set, check passes exactly the variables that `ci variables` marks optional (and no
// others), for every environment.
func TestCIVariablesAndCheckAgreeOnOptional(t *testing.T) {
	ciRepo(t)
	for _, env := range []string{"dev", "staging", "production"} {
		out, _, err := run(t, nil, "ci", "variables", "--env", env)
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{} // name → marked optional
		for _, line := range strings.Split(out, "\n")[1:] {
			if f := strings.Fields(line); len(f) > 2 {
				listed[f[0]] = f[2] == "optional"
			}
		}
		args := []string{"ci", "check", "--env", env, "-o", "json"}
		for _, s := range []string{"cloud", "douala", "yaounde"} {
			args = append(args, "--site", s)
		}
		out, _, err = run(t, []string{}, args...)
		if err == nil {
			t.Fatalf("%s: check passed with nothing set", env)
		}
		var results []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		}
		if err := json.Unmarshal([]byte(out), &results); err != nil {
			t.Fatalf("%s: %v\n%s", env, err, out)
		}
		optional := 0
		for _, r := range results {
			opt, ok := listed[r.Name]
			switch {
			case !ok:
				t.Errorf("%s: ci check reads %s, which ci variables does not list", env, r.Name)
			case opt != r.OK:
				t.Errorf("%s: %s is optional in ci variables: %v; passes ci check unset: %v", env, r.Name, opt, r.OK)
			}
			if r.OK {
				optional++
			}
			delete(listed, r.Name)
		}
		for name := range listed {
			t.Errorf("%s: ci variables lists %s, which ci check of every site does not read", env, name)
		}
		if optional == 0 {
			t.Errorf("%s: no optional variable: the comparison proves nothing", env)
		}
	}
}
