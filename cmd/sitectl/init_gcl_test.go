package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitPipelinesGitlabCILocal: the pipeline `sitectl init` writes (a
// .gitlab-ci.yml including ci/dev.yml, ci/staging.yml and ci/production.yml) passes
// gitlab-ci-local in the new repository, as GitLab would read it there: `--list`
// (GitLab's JSON schema, the local includes, rules and needs resolved) shows the
// validate jobs and dev's plan and deploy job of each site, and
// `--validate-dependency-chain` finds every needed job active. A deploy job
// needing a job that does not exist is refused (the check can fail).
func TestInitPipelinesGitlabCILocal(t *testing.T) {
	gcl := initGCL(t)
	root := filepath.Join(t.TempDir(), "ops-config")
	if _, stderr, err := run(t, nil, "init", root, "--sitectl-version", "v1.4.0", "--defaults"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	commit := func() {
		git("add", "-A")
		git("-c", "user.name=sitectl", "-c", "user.email=sitectl@example.com", "commit", "-q", "-m", "ops config")
		git("update-ref", "refs/remotes/origin/main", "HEAD")
	}
	git("init", "-q", "-b", "main")
	git("remote", "add", "origin", "https://gitlab.example.com/ops/ops-config.git")
	commit()
	git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
	gclRun := func(args ...string) (string, error) {
		cmd := exec.Command(gcl[0], append(gcl[1:len(gcl):len(gcl)], args...)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "NO_COLOR=1", "FORCE_COLOR=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	list, err := gclRun("--list")
	if err != nil {
		t.Fatalf("gitlab-ci-local --list: %v\n%s", err, list)
	}
	for _, job := range []string{"validate", "validate:dev:pipeline", "validate:staging:pipeline", "validate:production:pipeline",
		"plan:dev:hub", "deploy:dev:hub", "plan:dev:branch-a", "deploy:dev:branch-a", "plan:dev:branch-b", "deploy:dev:branch-b"} {
		if !strings.Contains(list, "\n"+job+" ") {
			t.Errorf("gitlab-ci-local --list does not show %s:\n%s", job, list)
		}
	}
	if out, err := gclRun("--validate-dependency-chain", "--json-schema-validation=false"); err != nil || !strings.Contains(out, "All job dependencies are valid") {
		t.Errorf("gitlab-ci-local --validate-dependency-chain: %v\n%s", err, out)
	}

	dev := filepath.Join(root, "ci", "dev.yml")
	b, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(b), "- plan:dev:hub\n", "- plan:dev:nowhere\n", 1)
	if broken == string(b) {
		t.Fatalf("ci/dev.yml has no need of plan:dev:hub to break:\n%s", b)
	}
	if err := os.WriteFile(dev, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	commit()
	if out, err := gclRun("--list"); err == nil || !strings.Contains(out, "plan:dev:nowhere") {
		t.Errorf("gitlab-ci-local --list of a pipeline needing a missing job: %v\n%s", err, out)
	}
}

// initGCL is gitlab-ci-local as checks/ finds it (hack/install-deps.sh installs it
// with Node 22 under /opt/sitectl-tools, or SITECTL_TOOLS): skipped when missing
// and not root, failed when missing as root (CI).
func initGCL(t *testing.T) []string {
	t.Helper()
	dir := os.Getenv("SITECTL_TOOLS")
	if dir == "" {
		dir = "/opt/sitectl-tools"
	}
	bin := filepath.Join(dir, "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(bin, "gitlab-ci-local")); err == nil {
		if _, err := os.Stat(filepath.Join(bin, "node")); err == nil {
			return []string{filepath.Join(bin, "node"), filepath.Join(bin, "gitlab-ci-local")}
		}
	}
	if p, err := exec.LookPath("gitlab-ci-local"); err == nil {
		return []string{p}
	}
	msg := "gitlab-ci-local is not installed (" + bin + " or PATH); `make deps` as root installs it"
	if os.Geteuid() != 0 {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return nil
}
