package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// snapshot lists every entry of dir with its kind and content hash: what a command
// must leave as it found it.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestConfigRefusals: every bad input of issue 20's configuration section is one
// clear error at `config validate` (or at the first command, for the environment
// choice): exit code 1, the message names the source (file, variable or flag),
// the site when one site's setting is at fault, the key and what is allowed, a
// problem of a layer every site shares is reported once, and nothing is written.
func TestConfigRefusals(t *testing.T) {
	t.Parallel()
	douala, err := os.ReadFile(filepath.Join("..", "..", "sites", "douala.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doualaWith := func(old, repl string) string {
		if !strings.Contains(string(douala), old) {
			t.Fatalf("douala.yaml has no %q", old)
		}
		return strings.Replace(string(douala), old, repl, 1)
	}
	type setup func(t *testing.T, dir string)
	write := func(name, content string) setup {
		return func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mkdir := func(name string) setup {
		return func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, name))
			if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	symlink := func(target, name string) setup {
		return func(t *testing.T, dir string) {
			if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	validate := []string{"config", "validate", "--env", "dev"}
	tests := []struct {
		name    string
		setups  []setup
		environ []string
		args    []string
		want    []string // each must appear in the output
		once    string   // must appear exactly once
		wantNot []string
	}{
		{name: "--set key that names no setting", args: append(validate, "--set", "deploy.timout=1m"),
			want: []string{"flag --set deploy.timout", "deploy.timout: unknown key; did you mean deploy.timeout?"}, once: "did you mean deploy.timeout"},
		{name: "--set key that names no setting, every environment", args: []string{"config", "validate", "--set", "deploy.timout=1m"},
			want: []string{"in every environment:", "✗ dev: 1 error(s)", "✗ production: 1 error(s)"}, once: "did you mean deploy.timeout"},
		{name: "--set one site's key that names no setting", args: append(validate, "--set", "douala:deploy.timout=1m"),
			want: []string{"flag --set douala:deploy.timout", "did you mean deploy.timeout?"}},
		{name: "SITECTL_<SITE>__<KEY> that names no setting", args: validate,
			environ: []string{"SITECTL_DOUALA__DEPLOY_TIMOUT=1m", "SITECTL_SOME_SECRET=s3cr3t-value", "SITECTL_GAROUA__X=1"},
			want:    []string{"environment variable SITECTL_DOUALA__DEPLOY_TIMOUT", "names no setting of site douala", "did you mean SITECTL_DOUALA__DEPLOY_TIMEOUT (deploy.timeout)?"},
			wantNot: []string{"SITECTL_SOME_SECRET", "s3cr3t-value", "GAROUA"}},
		{name: "stack value below its range, every site", args: append(validate, "--set", "values.django-api.replicas=-2"),
			want: []string{"flag --set values.django-api.replicas", "values.django-api.replicas", "is -2: want a whole number ≥ 0"}, once: "is -2"},
		{name: "stack value not a number, one site", args: append(validate, "--set", "yaounde:values.django-api.replicas=many"),
			want: []string{"flag --set yaounde:values.django-api.replicas", "values.django-api.replicas", "site yaounde", "is many: want a whole number ≥ 0"}, once: "is many"},
		{name: "stack value in a file", setups: []setup{write("env/dev.yaml", "sites:\n  douala:\n    values:\n      monitoring: {scrape_interval: often}\n")}, args: validate,
			want: []string{"env/dev.yaml (sites.douala)", "values.monitoring.scrape_interval", "site douala", `is "often"; want a duration`}, once: `"often"`},
		{name: "stack value key that names no setting (defaults map)", args: append(validate, "--set", "values.django-api.replica=3"),
			want: []string{"flag --set values.django-api.replica", "values.django-api.replica: names no setting of stack django-api", "did you mean values.django-api.replicas?"}, once: "names no setting"},
		{name: "nested stack value key that names no setting", setups: []setup{write("env/dev.yaml", "sites:\n  douala:\n    values:\n      kong: {canary: {wieght: 5}}\n")}, args: validate,
			want: []string{"env/dev.yaml (sites.douala)", "values.kong.canary.wieght: site douala: names no setting of stack kong", "did you mean values.kong.canary.weight?"}, once: "names no setting"},
		{name: "values of no stack, every site", setups: []setup{write("env/dev.yaml", "all:\n  values:\n    kongg: {http_port: 80}\n")}, args: validate,
			want: []string{"env/dev.yaml (all): values.kongg:", `"kongg" is not a stack; did you mean values.kong?`}, once: "is not a stack"},
		{name: "misspelt key in a site file", setups: []setup{write("douala.yaml", string(douala)+"deploy:\n  timout: 5m\n")}, args: validate,
			want: []string{"douala.yaml: deploy.timout: unknown key; did you mean deploy.timeout?"}},
		{name: "stacks as a scalar", setups: []setup{write("douala.yaml", doualaWith("stacks: [postgres, django-api, kong, elk, monitoring, mongo]", "stacks: postgres, kong"))}, args: validate,
			want: []string{"douala.yaml: stacks:", `is "postgres, kong", a single value; it must be a list`}},
		{name: "stacks as text from --set are trimmed", args: append(validate, "--set", "douala:stacks=postgres, kongg"),
			want: []string{`stack "kongg" does not exist; allowed:`}, wantNot: []string{`" kongg"`}},
		{name: "negative certificate lifetime", args: append(validate, "--set", "tunnel.cert_lifetime=-1h"),
			want: []string{"flag --set tunnel.cert_lifetime", "tunnel.cert_lifetime: is -1h0m0s; allowed: 1h to"}, once: "tunnel.cert_lifetime: is"},
		{name: "subnet size out of range", setups: []setup{write("douala.yaml", doualaWith("  default_addr_pool: [10.110.0.0/16]\n", "  default_addr_pool: [10.110.0.0/16]\n  subnet_size: 40\n"))}, args: validate,
			want: []string{"douala.yaml: swarm.subnet_size: is 40; allowed: 16-29"}},
		{name: "engine host that is no URL", setups: []setup{write("douala.yaml", doualaWith("host: ssh://ops@10.10.0.11", `host: "tcp://[::1"`))}, args: validate,
			want: []string{"douala.yaml: engine.host:", `is "tcp://[::1": not a valid address (missing ']' in host); allowed: unix://`}},
		{name: "type error in a shared layer, once", setups: []setup{write("env/dev.yaml", "all:\n  postgres: {port: lots}\n  deploy: {timeout: 5}\n")}, args: validate,
			want:    []string{"env/dev.yaml: all.postgres.port: is \"lots\", not a whole number", "all.deploy.timeout: is 5, not a duration; write the unit"},
			once:    "not a whole number",
			wantNot: []string{"mapstructure", "strconv", "expected type", "cannot parse"}},
		{name: "type error from a variable every site shares, once", environ: []string{"SITECTL_POSTGRES_PORT=lots"}, args: validate,
			want: []string{"environment variable SITECTL_POSTGRES_PORT: postgres.port: is \"lots\", not a whole number"}, once: "not a whole number"},
		{name: "YAML syntax error alone", setups: []setup{write("yaounde.yaml", "role: [spoke\n")}, args: validate,
			want: []string{"✗ dev: 1 error(s)", "yaounde.yaml: YAML syntax error: line 1"}, wantNot: []string{"is empty", "no nodes"}},
		{name: "site file that is a directory", setups: []setup{mkdir("garoua.yaml")}, args: validate,
			want: []string{"garoua.yaml: is a directory; a site file is a YAML file"}},
		{name: "site file named .yml", setups: []setup{write("garoua.yml", "role: spoke\n")}, args: validate,
			want: []string{"garoua.yml: sitectl reads only .yaml files: rename it garoua.yaml"}},
		{name: "environment overlay that is a directory", setups: []setup{mkdir("env/staging.yaml")}, args: []string{"config", "validate"},
			want: []string{"✗ staging: 1 error(s)", "env/staging.yaml: is a directory; an environment overlay is a YAML file"}},
		{name: "symbolic link loop", setups: []setup{symlink("b.yaml", "a.yaml"), symlink("a.yaml", "b.yaml")}, args: validate,
			want: []string{"a.yaml: is a symbolic link that loops", "b.yaml: is a symbolic link that loops"}, wantNot: []string{"douala.yaml", "cloud.yaml"}},
		{name: "garbage in .sitectl-env", setups: []setup{write(".sitectl-env", "dev\x00\xffjunk\n")}, args: []string{"status"},
			want: []string{".sitectl-env: holds", "not an environment name; write one of dev, production, staging in it"}},
		{name: "garbage in .sitectl-env at config validate", setups: []setup{write(".sitectl-env", "../douala\n")}, args: []string{"config", "validate"},
			want: []string{"(chosen by", ".sitectl-env: holds \"../douala\", not an environment name"}},
		{name: "production never chosen by .sitectl-env", setups: []setup{write(".sitectl-env", "production\n")}, args: []string{"status"},
			want: []string{".sitectl-env: names production, which is never selected from this file; pass --env production or set SITECTL_ENV=production"}},
		{name: "mongo votes counted as the config says", setups: []setup{write("douala.yaml", doualaWith("    - host: 10.10.0.12:27017\n      priority: 1",
			"    - host: 10.10.0.12:27017\n      votes: 7\n    - host: 10.10.0.13:27017\n    - host: 10.10.0.14:27017"))}, args: validate,
			want: []string{"douala.yaml: mongo.members[0].votes: is 7; allowed: 0 or 1"}, wantNot: []string{"9 voting members", "voting members; a replica set allows at most 7"}},
		{name: "file over the size limit", setups: []setup{write("yaounde.yaml", "a: "+strings.Repeat("x", 1<<20)+"\n")}, args: validate,
			want: []string{"yaounde.yaml: is 1048580 bytes; configuration files are limited to 1048576 bytes (1 MiB)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := exampleConfig(t, nil)
			for _, s := range tt.setups {
				s(t, dir)
			}
			before := snapshot(t, dir)
			args := append([]string{"--config-dir", dir}, tt.args...)
			out, errOut, err := run(t, tt.environ, args...)
			if code := exitCode(err); err == nil || code != 1 {
				t.Fatalf("exit code %d (err %v), want 1\n%s", code, err, out)
			}
			all := strings.ReplaceAll(out+errOut+err.Error(), dir+string(filepath.Separator), "")
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(all, w) {
					t.Errorf("output has %q:\n%s", w, all)
				}
			}
			if tt.once != "" {
				if n := strings.Count(all, tt.once); n != 1 {
					t.Errorf("%q said %d times, want once:\n%s", tt.once, n, all)
				}
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("the config dir changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestEnvironmentNamedFirst: a command that reaches a site says first which
// environment it acts on and where that choice came from.
func TestEnvironmentNamedFirst(t *testing.T) {
	dir := exampleConfig(t, map[string]string{".sitectl-env": "staging\n"})
	for _, tc := range []struct {
		args    []string
		environ []string
		want    string
	}{
		{[]string{"status"}, nil, "environment staging (from " + filepath.Join(dir, ".sitectl-env") + ")"},
		{[]string{"--env", "production", "plan", "--site", "douala"}, nil, "environment production (from --env)"},
		{[]string{"tunnels", "status"}, []string{"SITECTL_ENV=dev"}, "environment dev (from SITECTL_ENV)"},
	} {
		args := append([]string{"--config-dir", dir, "--set", "engine.host=unix:///nonexistent/docker.sock"}, tc.args...)
		_, errOut, _ := run(t, tc.environ, args...)
		first, _, _ := strings.Cut(errOut, "\n")
		if !strings.HasPrefix(first, tc.want) {
			t.Errorf("%v: first stderr line %q, want it to start with %q", tc.args, first, tc.want)
		}
	}
}
