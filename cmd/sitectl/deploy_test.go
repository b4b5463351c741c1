package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestDeploySiteSelection(t *testing.T) {
	dir := exampleConfig(t, nil)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"deploy needs sites", []string{"deploy"}, "name the sites: --site S (sites: cloud, douala, yaounde) or --all"},
		{"site and all", []string{"plan", "--site", "douala", "--all"}, "--site and --all exclude each other"},
		{"unknown site", []string{"status", "--site", "kribi"}, `no site "kribi"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, []string{}, append([]string{"--config-dir", dir}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 1 {
				t.Fatalf("err = %v (exit %d), want exit 1 with %q", err, exitCode(err), tt.want)
			}
		})
	}
}

// TestPlanUnreachableEngine: one clear error per site, exit 1, nothing else planned
// for it; the JSON plan carries the error.
func TestPlanUnreachableEngine(t *testing.T) {
	dir := exampleConfig(t, nil)
	out, _, err := run(t, []string{"SITECTL_PG_PASSWORD=x", "SITECTL_DJANGO_SECRET_KEY=y"}, "--config-dir", dir,
		"--set", "engine.host=unix:///nonexistent/docker.sock", "plan", "--site", "douala", "-o", "json")
	if exitCode(err) != 1 {
		t.Fatalf("exit %d (%v), want 1", exitCode(err), err)
	}
	var p struct {
		Sites []struct {
			Site  string `json:"site"`
			Error string `json:"error"`
		} `json:"sites"`
	}
	if jerr := json.Unmarshal([]byte(out), &p); jerr != nil {
		t.Fatalf("plan -o json: %v\n%s", jerr, out)
	}
	if len(p.Sites) != 1 || !strings.Contains(p.Sites[0].Error, "/nonexistent/docker.sock") {
		t.Fatalf("plan = %+v, want douala's error naming the engine", p.Sites)
	}
	if !strings.Contains(err.Error(), "could not plan douala") {
		t.Errorf("err = %v", err)
	}
}

// TestDeploySavedPlanRefused: deploy --plan refuses, before touching any engine's
// state, a file that is not a plan, a plan for another environment, --force-unlock,
// and a plan that no longer holds (a site that cannot be planned now, --prune on one
// side only, other sites), naming each difference and the plan command to run.
func TestDeploySavedPlanRefused(t *testing.T) {
	dir := exampleConfig(t, nil)
	tmp := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := []string{"SITECTL_PG_PASSWORD=x", "SITECTL_DJANGO_SECRET_KEY=y"}
	for name, tc := range map[string]struct {
		file string
		args []string
		want []string
	}{
		"missing file": {filepath.Join(tmp, "nope.json"), nil, []string{"read the saved plan", "nope.json", "retry the site's plan job"}},
		"not a plan":   {write("status.json", `{"sites": [{"site": "douala", "nodes": []}]}`), nil, []string{"is not a plan saved by `sitectl plan --out`"}},
		"no sites":     {write("empty.json", `{"environment": "dev", "sites": []}`), nil, []string{"no environment or no sites in it"}},
		"other env":    {write("prod.json", `{"environment": "production", "sites": [{"site": "douala", "steps": []}]}`), nil, []string{"is for environment production, not dev: pass --env production"}},
		"force-unlock": {write("dev.json", `{"environment": "dev", "sites": [{"site": "douala", "steps": []}]}`), []string{"--force-unlock"}, []string{"--plan and --force-unlock exclude each other"}},
		"stale": {write("dev2.json", `{"environment": "dev", "sites": [{"site": "douala", "steps": []}]}`), nil, []string{
			"no longer holds, so nothing was changed", "douala: cannot be planned now", "/nonexistent/docker.sock",
			"plan again (sitectl plan --env dev --site douala --out "}},
		"pruned": {write("prune.json", `{"environment": "dev", "prune": true, "sites": [{"site": "douala", "steps": []}]}`), nil, []string{"the saved plan was made with --prune: deploy with --prune"}},
		"other sites": {write("dev3.json", `{"environment": "dev", "sites": [{"site": "douala", "steps": []}]}`), []string{"--site", "cloud", "--prune"}, []string{
			"cloud: not in the saved plan", "douala: in the saved plan, not selected now", "made without --prune: deploy without it", "--site cloud --prune --out"}},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"--config-dir", dir, "--env", "dev", "--set", "engine.host=unix:///nonexistent/docker.sock", "deploy", "--plan", tc.file}, tc.args...)
			_, _, err := run(t, env, args...)
			if err == nil || exitCode(err) != 1 {
				t.Fatalf("err = %v (exit %d), want exit 1", err, exitCode(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
		})
	}
}

// TestDeploySavedPlanRefusedInGitLab: in a pipeline the fix is to retry the plan job.
func TestDeploySavedPlanRefusedInGitLab(t *testing.T) {
	dir := exampleConfig(t, nil)
	saved := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(saved, []byte(`{"environment": "dev", "sites": [{"site": "douala", "steps": []}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, []string{"SITECTL_PG_PASSWORD=x", "SITECTL_DJANGO_SECRET_KEY=y", "GITLAB_CI=true"}, "--config-dir", dir, "--env", "dev",
		"--set", "engine.host=unix:///nonexistent/docker.sock", "deploy", "--plan", saved)
	if err == nil || !strings.Contains(err.Error(), "no longer holds") ||
		!strings.Contains(err.Error(), "in GitLab: retry the job plan:dev:douala, review its plan, then run this deploy job again") {
		t.Fatalf("err = %v, want it to say which plan job to retry", err)
	}
}

// TestPlanSecretMissingNoSwarm: on a site with no swarm yet, a secret whose source
// is missing or unreadable fails the plan (exit 1) naming the secret and its
// reference, never its value; no part hides behind "planned during deploy"; and
// --out writes nothing (an earlier plan in the file is left as it was).
func TestPlanSecretMissingNoSwarm(t *testing.T) {
	host := fakeEngine(t)
	secretDir := t.TempDir()
	// cloud (one node, reached through engine.host) on the fake engine, its
	// postgres password from a file that is a directory.
	b, err := os.ReadFile("../../sites/cloud.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cloud := regexp.MustCompile(`(?m)^engine:\n(  .*\n)*`).ReplaceAllString(string(b), "engine:\n  host: "+host+"\n")
	dir := exampleConfig(t, map[string]string{"cloud.yaml": cloud})
	fileDir := exampleConfig(t, map[string]string{"cloud.yaml": cloud + "secrets:\n  postgres-password: {file: " + secretDir + "}\n"})
	const value = "canary-secret-value-7f3"
	for name, tc := range map[string]struct {
		env  []string
		dir  string
		want []string
	}{
		"env variable unset": {env: []string{"SITECTL_DJANGO_SECRET_KEY=" + value}, dir: dir,
			want: []string{"secret postgres-password", "env:SITECTL_PG_PASSWORD", "is not set"}},
		"file is a directory": {env: []string{"SITECTL_DJANGO_SECRET_KEY=" + value, "SITECTL_PG_PASSWORD=" + value}, dir: fileDir,
			want: []string{"secret postgres-password", "file:" + secretDir, "is a directory"}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			if !strings.Contains(strings.Join(tc.env, " "), "SITECTL_PG_PASSWORD=") {
				t.Setenv("SITECTL_PG_PASSWORD", "")
				if err := os.Unsetenv("SITECTL_PG_PASSWORD"); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(t.TempDir(), "plan.json")
			const earlier = `{"environment": "dev", "sites": [{"site": "cloud", "steps": []}]}`
			if err := os.WriteFile(out, []byte(earlier), 0o644); err != nil {
				t.Fatal(err)
			}
			// Databases and the gateway of every site refuse at once (nothing on the
			// network is waited for).
			args := []string{"--config-dir", tc.dir, "--env", "dev", "--set", "postgres.host=127.0.0.1", "--set", "postgres.port=1",
				"--set", "gateway.vici=unix:///nonexistent/charon.vici"}
			stdout, stderr, err := run(t, tc.env, append(args, "plan", "--site", "cloud", "--out", out)...)
			if exitCode(err) != 1 {
				t.Fatalf("exit %d (%v), want 1\n%s", exitCode(err), err, stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("plan output does not say %q:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout, "stacks (planned during deploy") {
				t.Errorf("the stacks are planned during deploy:\n%s", stdout)
			}
			if strings.Contains(stdout+stderr+err.Error(), value) {
				t.Errorf("a secret value is in the output")
			}
			if !strings.Contains(err.Error(), out+" was not written") {
				t.Errorf("err = %v, want it to say the plan file was not written", err)
			}
			if b, _ := os.ReadFile(out); string(b) != earlier {
				t.Errorf("--out file changed by a failed plan:\n%s", b)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(left) != 1 {
				t.Errorf("files left next to the plan: %v", left)
			}
		})
	}
}
