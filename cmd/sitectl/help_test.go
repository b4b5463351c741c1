package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestRootHelpShowsPath: the root help walks a newcomer through lab up → config
// validate → plan → deploy → status → drill, in that order, and every step is a
// command that exists.
func TestRootHelpShowsPath(t *testing.T) {
	out, _, err := run(t, []string{}, "--help")
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCommand(Streams{}, nil)
	at := 0
	for _, step := range []string{"sitectl lab up", "sitectl config validate", "sitectl plan", "sitectl deploy", "sitectl status", "sitectl drill partition"} {
		i := strings.Index(out[at:], step)
		if i < 0 {
			t.Fatalf("root help does not show %q after the previous step:\n%s", step, out)
		}
		at += i + len(step)
		if c, rest, err := root.Find(strings.Fields(step)[1:]); err != nil || len(rest) != 0 || c == root {
			t.Errorf("%q in the root help is not a command (%v)", step, err)
		}
	}
}

// allCommands lists root and every command under it.
func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, allCommands(sub)...)
	}
	return out
}

// TestHelpNamesNoSite: no help text (short, long, examples, flags) names a site or
// a number of sites: they come from the configuration, which may have others.
func TestHelpNamesNoSite(t *testing.T) {
	bad := regexp.MustCompile(`(?i)\b(douala|yaound[eé]|kribi|cloud|three sites|3 sites)\b`)
	for _, c := range allCommands(newRootCommand(Streams{}, nil)) {
		texts := map[string]string{"short": c.Short, "long": c.Long, "example": c.Example, "use": c.Use}
		c.Flags().VisitAll(func(f *pflag.Flag) { texts["--"+f.Name] = f.Usage })
		for where, text := range texts {
			// The cloud-loss drill is a name, not a site.
			text = strings.ReplaceAll(text, "cloud-loss", "")
			if m := bad.FindString(text); m != "" {
				t.Errorf("%s %s names %q: %s", c.CommandPath(), where, m, text)
			}
		}
	}
}

// TestHelpMarksRequiredFlags: a flag a command cannot run without says so in its
// help; one that is not required does not.
func TestHelpMarksRequiredFlags(t *testing.T) {
	tests := []struct {
		command []string
		flag    string
		want    string // "" for not required
	}{
		{[]string{"deploy"}, "site", "(required: --site or --all)"},
		{[]string{"deploy"}, "all", "(required: --site or --all)"},
		{[]string{"plan"}, "site", ""},
		{[]string{"status"}, "site", ""},
		{[]string{"stacks", "render"}, "site", ""},
		{[]string{"drill", "partition"}, "site", "(required)"},
		{[]string{"drill", "node-loss"}, "node", "(required)"},
		{[]string{"mongo", "declare-authoritative"}, "site", "(required)"},
		{[]string{"ci", "check"}, "site", "(required)"},
		{[]string{"tunnels", "down"}, "link", "(required)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.command, " ")+" --"+tt.flag, func(t *testing.T) {
			out, _, err := run(t, []string{}, append(tt.command, "--help")...)
			if err != nil {
				t.Fatal(err)
			}
			var line string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "--"+tt.flag+" ") {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no --%s in the help:\n%s", tt.flag, out)
			}
			if tt.want == "" && strings.Contains(line, "(required") {
				t.Errorf("--%s is marked required: %s", tt.flag, line)
			}
			if tt.want != "" && !strings.Contains(line, tt.want) {
				t.Errorf("--%s: %q, want it to say %q", tt.flag, line, tt.want)
			}
		})
	}
}

// TestSiteSelectionSameEverywhere: plan, deploy, status and stacks render select
// sites the same way: --site repeatable or comma-separated (spaces ignored, a site
// named twice counted once, topology order), --all, the same errors for an empty
// name, an unknown site, or --site with --all. The one difference is stated in the
// help: naming no site is every site for the commands that read, an error for
// deploy.
func TestSiteSelectionSameEverywhere(t *testing.T) {
	dir := exampleConfig(t, nil)
	env := []string{"SITECTL_PG_PASSWORD=x", "SITECTL_DJANGO_SECRET_KEY=y", "SITECTL_MONGO_KEYFILE=z", "SITECTL_MONGO_PASSWORD=w",
		"SITECTL_KONG_TLS_CERT=c", "SITECTL_KONG_TLS_KEY=k", "SITECTL_GRAFANA_ADMIN_PASSWORD=g"}
	commands := [][]string{{"plan"}, {"deploy"}, {"status"}, {"stacks", "render"}}
	all := "cloud,douala,yaounde"
	tests := []struct {
		name    string
		args    []string
		want    string // the sites acted on, comma-separated
		wantErr string
		deploy  string // deploy's error when it differs
	}{
		{"no flag", nil, all, "", "name the sites: --site S (sites: cloud, douala, yaounde) or --all"},
		{"all", []string{"--all"}, all, "", ""},
		{"one", []string{"--site", "douala"}, "douala", "", ""},
		{"repeated, topology order", []string{"--site", "yaounde", "--site", "douala"}, "douala,yaounde", "", ""},
		{"comma and spaces", []string{"--site", "yaounde, douala"}, "douala,yaounde", "", ""},
		{"named twice", []string{"--site", "douala,douala", "--site", "douala"}, "douala", "", ""},
		{"empty name", []string{"--site", ""}, "", "--site needs a site name (sites: cloud, douala, yaounde)", ""},
		{"empty in a list", []string{"--site", "douala,"}, "", "--site needs a site name", ""},
		{"unknown", []string{"--site", "kribi"}, "", `no site "kribi"`, ""},
		{"site and all", []string{"--site", "douala", "--all"}, "", "--site and --all exclude each other", ""},
	}
	for _, tt := range tests {
		for _, cmd := range commands {
			t.Run(tt.name+"/"+strings.Join(cmd, " "), func(t *testing.T) {
				args := append([]string{"--config-dir", dir, "--env", "dev", "-q", "-o", "json",
					"--set", "engine.host=unix:///nonexistent/docker.sock", "--set", "gateway.vici=unix:///nonexistent/charon.vici"}, cmd...)
				stdout, _, err := run(t, env, append(args, tt.args...)...)
				wantErr := tt.wantErr
				if cmd[0] == "deploy" && tt.deploy != "" {
					wantErr = tt.deploy
				}
				if wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), wantErr) || exitCode(err) != 1 || stdout != "" {
						t.Fatalf("err = %v (exit %d), stdout %.200q; want exit 1 with %q and nothing on stdout", err, exitCode(err), stdout, wantErr)
					}
					return
				}
				if got := actedOn(t, cmd[0], stdout); got != tt.want {
					t.Errorf("acted on %s, want %s", got, tt.want)
				}
			})
		}
	}
}

// actedOn reads the sites a command's JSON output is about, in order: one item per
// site for plan, deploy and status; one per file, grouped by site, for stacks render.
func actedOn(t *testing.T, cmd, stdout string) string {
	t.Helper()
	var items []struct {
		Site string `json:"site"`
	}
	var err error
	if cmd == "plan" {
		var p struct {
			Sites *[]struct {
				Site string `json:"site"`
			} `json:"sites"`
		}
		p.Sites = &items
		err = json.Unmarshal([]byte(stdout), &p)
	} else {
		err = json.Unmarshal([]byte(stdout), &items)
	}
	if err != nil {
		t.Fatalf("%s -o json: %v\n%s", cmd, err, stdout)
	}
	var sites []string
	for _, it := range items {
		if cmd != "stacks" || len(sites) == 0 || sites[len(sites)-1] != it.Site {
			sites = append(sites, it.Site)
		}
	}
	return strings.Join(sites, ",")
}
