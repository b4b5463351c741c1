package main

import (
	"encoding/json"
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
