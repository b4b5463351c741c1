package sites

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestReadRefusals: what the reader itself refuses, each named once as what it is.
func TestReadRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, site, want string
	}{
		{"duplicate key", "role: spoke\nlan: 10.20.0.0/24\nrole: hub\n", `line 3: key "role" is set twice (also at line 1)`},
		{"alias loop", "a: &x [*x]\n", "refers to a value containing itself"},
		{"alias bomb", "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", "expands to more than"},
		{"merge key", "<<: {role: hub}\n", "merge keys (<<) are not supported"},
		{"a list, not a mapping", "- role: hub\n", "the file must be a mapping of settings (key: value), not a list"},
		{"complex key", "? [a, b]\n: c\n", "a key must be a plain name, not a list"},
		{"syntax", "role: [spoke\n", "YAML syntax error: line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(Options{Dir: "sites", FS: exampleFS(t, map[string]string{"yaounde.yaml": tc.site}), Env: "dev", Environ: []string{}})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want problems, got %v", err)
			}
			if len(ps) != 1 || ps[0].File != filepath.Join("sites", "yaounde.yaml") || !strings.Contains(ps[0].Message, tc.want) {
				t.Fatalf("want one problem of sites/yaounde.yaml saying %q (nothing else), got:\n%v", tc.want, ps)
			}
		})
	}
}

// exampleFS serves the example configuration from memory, with files replaced.
func exampleFS(t testing.TB, files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, n := range []string{"defaults.yaml", "douala.yaml", "yaounde.yaml", "cloud.yaml", "schema.sql", "env/dev.yaml", "env/production.yaml", "env/staging.yaml"} {
		fsys[n] = &fstest.MapFile{Data: []byte(mustRead(t, n))}
	}
	for n, c := range files {
		fsys[n] = &fstest.MapFile{Data: []byte(c)}
	}
	return fsys
}

// TestSharedLayerProblemsOnce: a problem in a layer every site shares is reported
// once, with no site; the same problem in one site's layer names the site.
func TestSharedLayerProblemsOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		files   map[string]string
		environ []string
		set     []string
		file    string
		site    string
	}{
		{"defaults", map[string]string{"defaults.yaml": mustRead(t, "defaults.yaml") + "swarm_x: 1\n"}, nil, nil, "sites/defaults.yaml", ""},
		{"overlay all", map[string]string{"env/dev.yaml": "all:\n  tunnel: {cert_lifetime: -1h}\n"}, nil, nil, "sites/env/dev.yaml (all)", ""},
		{"variable", nil, []string{"SITECTL_TUNNEL_CERT_LIFETIME=-1h"}, nil, "environment variable SITECTL_TUNNEL_CERT_LIFETIME", ""},
		{"flag", nil, nil, []string{"tunnel.cert_lifetime=-1h"}, "flag --set tunnel.cert_lifetime", ""},
		{"one site's flag", nil, nil, []string{"douala:tunnel.cert_lifetime=-1h"}, "flag --set douala:tunnel.cert_lifetime", "douala"},
		{"one site's variable", nil, []string{"SITECTL_DOUALA__TUNNEL_CERT_LIFETIME=-1h"}, nil, "environment variable SITECTL_DOUALA__TUNNEL_CERT_LIFETIME", "douala"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			environ := tc.environ
			if environ == nil {
				environ = []string{}
			}
			_, err := Load(Options{Dir: "sites", FS: exampleFS(t, tc.files), Env: "dev", Environ: environ, Set: tc.set})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want problems, got %v", err)
			}
			if len(ps) != 1 || ps[0].File != tc.file || ps[0].Site != tc.site {
				t.Fatalf("want one problem of %q, site %q; got:\n%#v", tc.file, tc.site, ps)
			}
		})
	}
}

// TestLoadStopsWhenCancelled: an interrupted load stops and says so.
func TestLoadStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	topo, err := Load(Options{Context: ctx, Dir: copyConfig(t, nil), Env: "dev", Environ: []string{}})
	if topo != nil || err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Load after cancel = %v, %v; want it stopped with context.Canceled", topo, err)
	}
}

// TestBigFileRefusedAtOnce: a file over MaxFileBytes is refused without parsing it.
func TestBigFileRefusedAtOnce(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("k: [", 3<<20) // would take the YAML parser a long time
	start := time.Now()
	_, err := Load(Options{Dir: "sites", FS: exampleFS(t, map[string]string{"yaounde.yaml": big}), Env: "dev", Environ: []string{}})
	if err == nil || !strings.Contains(err.Error(), "configuration files are limited to 1048576 bytes") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("refusal took %v", d) // not an assertion: timing belongs in benchmarks
	}
}

// TestChooseEnv: where the environment comes from, and what is refused naming it.
func TestChooseEnv(t *testing.T) {
	dir := copyConfig(t, nil)
	envFile := filepath.Join(dir, CurrentEnvFile)
	for _, tc := range []struct {
		name, flag, file string
		environ          []string
		want, source     string
		err              string
	}{
		{name: "default", want: "dev", source: "default"},
		{name: "file", file: "staging\n", want: "staging", source: envFile},
		{name: "variable over file", file: "staging\n", environ: []string{"SITECTL_ENV=dev"}, want: "dev", source: "SITECTL_ENV"},
		{name: "flag over all", flag: "production", file: "staging\n", environ: []string{"SITECTL_ENV=dev"}, want: "production", source: "--env"},
		{name: "production by variable", environ: []string{"SITECTL_ENV=production"}, want: "production", source: "SITECTL_ENV"},
		{name: "production by file", file: "production\n", err: envFile + ": names production, which is never selected from this file; pass --env production or set SITECTL_ENV=production"},
		{name: "garbage file", file: "\x00\xffnot an env", err: envFile + `: holds "\x00\xffnot an env", not an environment name`},
		{name: "file names a missing overlay", file: "qa\n", err: envFile + `: names environment "qa", which has no overlay`},
		{name: "garbage flag", flag: "../douala", err: `--env: "../douala" is not an environment name`},
		{name: "garbage variable", environ: []string{"SITECTL_ENV=Prod uction"}, err: `SITECTL_ENV: "Prod uction" is not an environment name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(envFile)
			if tc.file != "" {
				if err := writeFile(envFile, tc.file); err != nil {
					t.Fatal(err)
				}
			}
			c, err := ChooseEnv(tc.flag, dir, tc.environ)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to start with %q", err, tc.err)
				}
				return
			}
			if err != nil || c.Env != tc.want || c.Source != tc.source {
				t.Fatalf("got %+v, %v; want %s from %s", c, err, tc.want, tc.source)
			}
		})
	}
}

// TestReadErrorsHideValues: a value the reader cannot read (it may be a secret
// pasted by mistake) never shows in the error.
func TestReadErrorsHideValues(t *testing.T) {
	t.Parallel()
	for _, site := range []string{"postgres:\n  password: !!int hunter2-canary\n", "hunter2-canary\n", "tunnel: {psk: hunter2-canary}\n", "postgres: {password: [hunter2-canary]}\n"} {
		_, err := Load(Options{Dir: "sites", FS: exampleFS(t, map[string]string{"yaounde.yaml": site}), Env: "dev", Environ: []string{}})
		if err == nil {
			t.Fatalf("%q accepted", site)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the value shows in the error:\n%v", site, err)
		}
	}
}
