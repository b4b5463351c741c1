package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/swarm"
)

// TestLabStacksRenderPlainDeploy: the tree `sitectl stacks render` writes for one
// lab site deploys with the plain docker CLI, following the tree's README —
// networks.sh, secrets.sh, `docker stack deploy -c <stack>/compose.yaml` — against
// the site's engine (DOCKER_HOST), and every service converges (running N/N).
// sitectl only makes the swarm (membership, node labels). The stacks are removed
// at the end; a later sitectl deploy makes its own.
func TestLabStacksRenderPlainDeploy(t *testing.T) {
	l := labtest.Shared(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the docker CLI is needed (hack/install-deps.sh installs it): %v", err)
	}
	const name = "douala"
	site := l.Topo.Site(name)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel) // after the stacks' removal, registered below (cleanups run last first)
	res := deploy.Deploy(ctx, l.Topo, []*sites.Site{site}, []plan.Part{swarm.Part{}}, deploy.Options{})
	if err := res[0].Err(); err != nil {
		t.Fatalf("swarm of %s: %v", name, err)
	}
	host := engine.SiteEndpoint(site).Host
	docker := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	sh := func(script string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, "sh", script)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sh %s: %v\n%s", script, err, out)
		}
	}

	dir := t.TempDir()
	if _, stderr, err := run(t, nil, "--config-dir", l.ConfigDir, "--env", "lab", "stacks", "render", "--site", name, "--dir", dir); err != nil {
		t.Fatalf("stacks render: %v\n%s", err, stderr)
	}
	tree := filepath.Join(dir, name)
	composes, _ := filepath.Glob(filepath.Join(tree, "*", "compose.yaml"))
	if len(composes) == 0 {
		t.Fatalf("no compose file in %s", tree)
	}
	var stackNames []string
	for _, c := range composes {
		stackNames = append(stackNames, filepath.Base(filepath.Dir(c)))
	}
	sort.Strings(stackNames)
	// What an earlier sitectl deploy made of these stacks goes first (same service
	// names and host ports); the site networks stay (networks.sh keeps them).
	removeStacks := func() {
		if out, err := docker(append([]string{"stack", "rm"}, stackNames...)...); err != nil && !strings.Contains(out, "Nothing found in stack") {
			t.Logf("docker stack rm: %v\n%s", err, out)
		}
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			out, err := docker("service", "ls", "--format", "{{.Name}}")
			left := 0
			for _, svc := range strings.Fields(out) {
				for _, stack := range stackNames {
					if strings.HasPrefix(svc, stack+"_") {
						left++
					}
				}
			}
			if err == nil && left == 0 {
				return
			}
		}
		t.Logf("services of %s still listed 2m after docker stack rm", strings.Join(stackNames, ", "))
	}
	removeStacks()
	t.Cleanup(func() {
		removeStacks()
		restoreLab(t, l)
	})

	sh(filepath.Join(tree, "networks.sh"))
	sh(filepath.Join(tree, "secrets.sh"))
	for _, stack := range stackNames {
		if out, err := docker("stack", "deploy", "--resolve-image", "never", "-c", filepath.Join(tree, stack, "compose.yaml"), stack); err != nil {
			t.Fatalf("docker stack deploy %s: %v\n%s", stack, err, out)
		}
	}
	// As the README says: the values secrets.sh wrote go once deployed.
	for _, stack := range stackNames {
		if err := os.RemoveAll(filepath.Join(tree, stack, "secrets")); err != nil {
			t.Fatal(err)
		}
	}

	// Converged: every service of the stacks runs its desired replicas.
	var last string
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(2 * time.Second) {
		out, err := docker("service", "ls", "--format", "{{.Name}} {{.Replicas}}")
		if err != nil {
			t.Fatalf("docker service ls: %v\n%s", err, out)
		}
		last = out
		services, pending := 0, []string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			for _, stack := range stackNames {
				if strings.HasPrefix(f[0], stack+"_") {
					services++
					if r := strings.SplitN(f[1], "/", 2); len(r) != 2 || r[0] != r[1] || r[0] == "0" {
						pending = append(pending, line)
					}
				}
			}
		}
		if services > 0 && len(pending) == 0 {
			t.Logf("converged with plain docker stack deploy (%s):\n%s", strings.Join(stackNames, ", "), out)
			break
		}
		if time.Now().After(deadline) {
			ps, _ := docker(append([]string{"stack", "ps", "--no-trunc"}, stackNames[0])...)
			t.Fatalf("not converged after 5m: %d service(s), waiting for %q\n%s\n%s", services, pending, last, ps)
		}
	}
	// The services are plain docker's: no sitectl label on them.
	out, err := docker("service", "ls", "--filter", "label=sitectl.managed", "--format", "{{.Name}}")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("services carrying sitectl's labels after a plain deploy: %v %q", err, out)
	}
}

// restoreLab gives the shared lab back as the other lab tests expect it: every stack
// deployed by sitectl and every replication flow working. The plain deploy removed
// and re-created douala's database, which disables the subscriptions from it
// (disable_on_error); deploy --all must leave every flow working. Before
// 2026-12-07 it could leave douala → cloud disabled (docs/postgres-replication.md,
// "A publisher's server stopping after its subscriber's deploy"): that fails the
// test, and replication is then resumed so the lab is usable by the tests after it.
func restoreLab(t *testing.T, l *labtest.Lab) {
	t.Helper()
	cli := func(args ...string) (string, string, error) {
		return run(t, nil, append([]string{"--config-dir", l.ConfigDir, "--env", "lab"}, args...)...)
	}
	if _, stderr, err := cli("deploy", "--all"); err != nil {
		t.Errorf("restore the lab: deploy --all: %v\n%s", err, stderr)
		return
	}
	var out string
	resumed := false
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var err error
		if out, _, err = cli("replication", "status"); err == nil {
			return
		}
		if strings.Contains(out, "disabled") && !resumed {
			resumed = true
			t.Errorf("restore the lab: deploy --all left a replication flow disabled:\n%s", out)
			if _, stderr, err := cli("replication", "resume"); err != nil {
				t.Logf("replication resume: %v\n%s", err, stderr)
			}
		}
	}
	t.Errorf("restore the lab: replication does not work 2m after deploy --all:\n%s", out)
}
