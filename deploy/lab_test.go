package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"encoding/json"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labgate"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	sitectlswarm "github.com/sitectl/sitectl/swarm"
)

// labPrefix names this package's lab (namespaces dpt-*, state /var/lib/sitectl/lab-dpt).
const labPrefix = "dpt"

// ownParts are the parts this package owns (the other parts have their own lab
// tests; the CLI kill test below runs them all).
var ownParts = []plan.Part{sitectlswarm.Part{}, Stacks, Apps}

// fast are settings that keep the lab deploys short: quick health checks and a short
// post-update monitor (the production values are in the stacks' defaults).
var fast = []string{"values.django-api.health_interval=1s", "values.django-api.monitor=3s"}

type labEnv struct {
	dir string
}

// startLab copies the repo's site configs (with only the stacks this package's
// engine is proven with), brings a lab up on them and removes it when the test ends.
func startLab(t *testing.T) *labEnv {
	t.Helper()
	return startLabWith(t, "[postgres, django-api]", labPrefix)
}

// startLabWith is startLab with every site's stacks set to stacks (a YAML list) and
// the lab named prefix.
func startLabWith(t *testing.T, stacks, prefix string) *labEnv {
	t.Helper()
	labgate.Skip(t)
	if err := lab.Preflight(); err != nil {
		t.Skipf("lab test: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "sites")
	if err := os.CopyFS(dir, os.DirFS("../sites")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{".sitectl-env", "env/lab.yaml"} {
		os.Remove(filepath.Join(dir, f))
	}
	for _, f := range []string{"defaults.yaml", "douala.yaml", "yaounde.yaml", "cloud.yaml"} {
		p := filepath.Join(dir, f)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = regexp.MustCompile(`(?m)^stacks: .*$`).ReplaceAll(b, []byte("stacks: "+stacks))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	opts := lab.Options{ConfigDir: dir, Prefix: prefix}
	_, _ = lab.Down(ctx, opts) // a lab left by a killed run: nothing to report if none
	t.Cleanup(func() {
		if _, err := lab.Down(context.Background(), opts); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	if _, err := lab.Up(ctx, opts); err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return &labEnv{dir: dir}
}

func (e *labEnv) topo(t *testing.T, set ...string) *sites.Topology {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: e.dir, Env: "lab", Environ: []string{}, Set: append(append([]string{}, fast...), set...)})
	if err != nil {
		t.Fatal(err)
	}
	labreach.Install(topo)
	return topo
}

func (e *labEnv) manager(t *testing.T, topo *sites.Topology, site string) *client.Client {
	t.Helper()
	c, err := engine.ForSite(context.Background(), topo.Site(site))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// logWriter sends progress lines to the test log (seen with -v).
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func testOpts(t *testing.T) Options {
	return Options{Environ: []string{}, Poll: 200 * time.Millisecond, Progress: progress.New(logWriter{t})}
}

func deployOK(t *testing.T, topo *sites.Topology, names ...string) []SiteResult {
	t.Helper()
	sel, err := topo.Select(names...)
	if err != nil {
		t.Fatal(err)
	}
	res := Deploy(context.Background(), topo, sel, ownParts, testOpts(t))
	for _, r := range res {
		if r.Err() != nil {
			t.Fatalf("deploy: %v", r.Err())
		}
	}
	return res
}

func planOf(t *testing.T, topo *sites.Topology) *plan.Plan {
	t.Helper()
	p := Plan(context.Background(), topo, topo.Sites, ownParts, Options{Environ: []string{}})
	if f := p.Failed(); len(f) > 0 {
		t.Fatalf("plan failed for %v: %+v", f, p.Sites)
	}
	return p
}

// taskTable lists a service's tasks for a failure message.
func taskTable(t *testing.T, c *client.Client, serviceID string) string {
	t.Helper()
	res, err := c.TaskList(context.Background(), client.TaskListOptions{Filters: make(client.Filters).Add("service", serviceID)})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, k := range res.Items {
		fmt.Fprintf(&b, "slot %d %s desired=%s state=%s %q image=%s updated=%s\n", k.Slot, k.ID, k.DesiredState, k.Status.State,
			k.Status.Err, k.Spec.ContainerSpec.Image, k.UpdatedAt.Format(time.TimeOnly))
	}
	return b.String()
}

func services(t *testing.T, c *client.Client) map[string]swarm.Service {
	t.Helper()
	res, err := c.ServiceList(context.Background(), client.ServiceListOptions{Status: true})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]swarm.Service{}
	for _, s := range res.Items {
		out[s.Spec.Name] = s
	}
	return out
}

var hashSuffix = regexp.MustCompile(`_[0-9a-f]{10}\b`)

// TestLabDeploy runs issue 4's "Show" on a real three-site lab, in order.
func TestLabDeploy(t *testing.T) {
	built := make(chan error, 1)
	bin := filepath.Join(t.TempDir(), "sitectl")
	go func() { // while the lab comes up
		out, err := exec.Command("go", "build", "-o", bin, "../cmd/sitectl").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("build sitectl: %w\n%s", err, out)
		}
		built <- err
	}()
	e := startLab(t)
	topo := e.topo(t)

	t.Run("plan from empty", func(t *testing.T) {
		p := planOf(t, topo)
		var b bytes.Buffer
		if err := p.Render(&b); err != nil {
			t.Fatal(err)
		}
		out := hashSuffix.ReplaceAllString(b.String(), "_<hash>")
		out = strings.ReplaceAll(out, "/var/lib/sitectl/lab-"+labPrefix, "<lab>")
		golden.AssertString(t, "plan-lab-empty.golden", out)
		// A plan saved now still holds a moment later (deploy --plan).
		if diff := plan.Stale(p, planOf(t, topo)); len(diff) != 0 {
			t.Errorf("two plans of the empty sites differ: %q", diff)
		}
	})

	t.Run("deploy --all killed mid-way, then run again, converges", func(t *testing.T) {
		if err := <-built; err != nil {
			t.Fatal(err)
		}
		args := []string{"--config-dir", e.dir, "--env", "lab"}
		for _, s := range fast {
			args = append(args, "--set", s)
		}
		cmd := exec.Command(bin, append(args, "deploy", "--all")...)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "✓ douala: + secret") {
				break // killed after some objects exist, before the services
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill the deploy: %v", err)
		}
		_ = cmd.Wait() // killed: its exit status says nothing
		if n := ownSteps(t, bin, args); n == 0 {
			t.Fatal("plan after the kill: no steps pending, want the rest of the deploy")
		}
		deployOK(t, topo) // takes over the dead deploy's lock
		for _, st := range Status(context.Background(), topo, topo.Sites, Options{}) {
			if st.Error != "" {
				t.Fatalf("status: %s", st.Error)
			}
			managed := 0
			for _, s := range st.Services {
				if s.Managed {
					managed++
					if s.Running != s.Desired || s.Desired == 0 {
						t.Errorf("%s %s: %d/%d running", st.Site, s.Name, s.Running, s.Desired)
					}
				}
			}
			if managed != 2 || len(st.Networks) < 3 || len(st.Nodes) == 0 {
				t.Errorf("%s status: %d managed services, %d networks, %d nodes", st.Site, managed, len(st.Networks), len(st.Nodes))
			}
		}
	})

	c := e.manager(t, topo, "douala")
	var cur []string // settings the later steps keep

	t.Run("second deploy changes nothing", func(t *testing.T) {
		before := services(t, c)
		if n := planOf(t, topo).Changes(); n != 0 {
			t.Fatalf("plan after deploy has %d changes", n)
		}
		res := deployOK(t, topo)
		for _, r := range res {
			if len(r.Applied) != 0 {
				t.Errorf("%s: second deploy applied %v", r.Site, r.Applied)
			}
		}
		for name, s := range services(t, c) {
			if b := before[name]; !b.UpdatedAt.Equal(s.UpdatedAt) || b.Version != s.Version {
				t.Errorf("%s changed: version %d → %d, updated %s → %s", name, b.Version.Index, s.Version.Index, b.UpdatedAt, s.UpdatedAt)
			}
		}
	})

	t.Run("one replica change is one update", func(t *testing.T) {
		changed := e.topo(t, append(cur, "douala:values.django-api.replicas=2")...)
		p := planOf(t, changed)
		var steps []plan.Step
		for _, sp := range p.Sites {
			for _, st := range sp.Steps {
				if st.Action != plan.Noop {
					steps = append(steps, st)
				}
			}
		}
		if len(steps) != 1 || steps[0].Site != "douala" || steps[0].Name != "django-api_api" || steps[0].Action != plan.Update ||
			strings.Join(steps[0].Diff, ";") != "replicas: 1 → 2" {
			t.Fatalf("steps %+v, want one update of douala django-api_api (replicas: 1 → 2)", steps)
		}
		if diff := plan.Stale(p, planOf(t, changed)); len(diff) != 0 {
			t.Errorf("two plans of the same change differ: %q", diff)
		}
		if diff := plan.Stale(p, planOf(t, topo)); len(diff) != 1 || !strings.Contains(diff[0], "douala: no longer ~ service django-api_api (replicas: 1 → 2)") {
			t.Errorf("a plan of the change against one without it: %q", diff)
		}
		// Not applied: the next steps roll one replica, which is quicker.
	})

	t.Run("secret change rolls its services and prunes the old version", func(t *testing.T) {
		f := filepath.Join(filepath.Dir(e.dir), "django-secret-key")
		if err := os.WriteFile(f, []byte("a new value"), 0o600); err != nil {
			t.Fatal(err)
		}
		cur = append(cur, "douala:secrets.django-secret-key.file="+f)
		changed := e.topo(t, cur...)
		before := services(t, c)["django-api_api"]
		oldName := secretName(before, "django-secret-key")
		deployOK(t, changed, "douala")
		after := services(t, c)["django-api_api"]
		newName := secretName(after, "django-secret-key")
		if newName == oldName || after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("service did not roll: secret %s → %s", oldName, newName)
		}
		if !after.UpdatedAt.Equal(before.UpdatedAt) && services(t, c)["postgres_db"].UpdatedAt.After(before.UpdatedAt) {
			t.Error("postgres_db rolled although its secrets did not change")
		}
		res, err := c.SecretList(context.Background(), client.SecretListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range res.Items {
			if s.Spec.Name == oldName {
				t.Errorf("old secret %s still exists", oldName)
			}
		}
	})

	t.Run("a broken image rolls back and fails naming the service", func(t *testing.T) {
		broken := e.topo(t, append(cur, "douala:images.django-api=sitectl-lab/django-api:broken")...)
		sel, _ := broken.Select("douala")
		start := time.Now()
		res := Deploy(context.Background(), broken, sel, ownParts, testOpts(t))
		err := res[0].Err()
		if err == nil || !strings.Contains(err.Error(), "django-api_api") || !strings.Contains(err.Error(), "rolled it back") ||
			!strings.Contains(err.Error(), "No such image: sitectl-lab/django-api:broken") {
			t.Fatalf("deploy of a broken image: err = %v, want it to name django-api_api, the rollback and the task error", err)
		}
		t.Logf("failed after %s: %v", time.Since(start).Round(time.Second), err)
		svc := services(t, c)["django-api_api"]
		if img := svc.Spec.TaskTemplate.ContainerSpec.Image; strings.Contains(img, "broken") {
			t.Errorf("service image is %s after the rollback", img)
		}
		// The previous spec runs again: deploy reports a rollback once swarm settled
		// (and re-applies the spec if swarm keeps an extra task running).
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			svc = services(t, c)["django-api_api"]
			if st := svc.ServiceStatus; st != nil && st.RunningTasks == st.DesiredTasks && st.DesiredTasks == 1 {
				t.Logf("back to 1/1 running %s after the deploy started", time.Since(start).Round(time.Second))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the rollback: %+v tasks\n%s", svc.ServiceStatus, taskTable(t, c, svc.ID))
			}
		}
	})

	t.Run("a second deploy of a locked site fails fast naming the holder", func(t *testing.T) {
		ok := e.topo(t, cur...)
		s := newSession(ok, ok.Site("douala"), c, Options{})
		defer func(d time.Duration) { LockRefresh = d }(LockRefresh)
		LockRefresh = 300 * time.Millisecond
		held, err := s.acquireLock(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		first, err := s.lockStatus(context.Background())
		if err != nil || first == nil {
			t.Fatalf("lock status: %v, %v", first, err)
		}
		time.Sleep(time.Second)
		if again, _ := s.lockStatus(context.Background()); again == nil || !again.Heartbeat.After(first.Heartbeat) {
			t.Errorf("the holder did not refresh the lock: %v then %v", first.Heartbeat, again)
		}
		sel, _ := ok.Select("douala")
		start := time.Now()
		res := Deploy(context.Background(), ok, sel, ownParts, Options{Environ: []string{}})
		err = res[0].Err()
		host, _ := os.Hostname()
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "@"+host+" pid ") {
			t.Fatalf("err = %v, want the lock holder named", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("locked deploy took %s to fail", d)
		}
		// --force-unlock takes it over (the holder's refresh stops seeing it).
		forced := Deploy(context.Background(), ok, sel, ownParts, Options{Environ: []string{}, ForceUnlock: true})
		if forced[0].Err() != nil {
			t.Fatalf("--force-unlock: %v", forced[0].Err())
		}
		if err := held.release(context.Background()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("prune removes only what sitectl made and the config dropped", func(t *testing.T) {
		dropped := e.topo(t, cur...)
		dropped.Site("douala").Stacks = []string{"postgres"}
		sel, _ := dropped.Select("douala")
		p := Plan(context.Background(), dropped, sel, ownParts, Options{Environ: []string{}})
		if p.Changes() != 0 || len(p.Sites[0].Notes) == 0 || !strings.Contains(strings.Join(p.Sites[0].Notes, " "), "service django-api_api") {
			t.Fatalf("plan without --prune: %d changes, notes %q; want none and a note keeping django-api_api", p.Changes(), p.Sites[0].Notes)
		}
		res := Deploy(context.Background(), dropped, sel, ownParts, Options{Environ: []string{}, Prune: true, Progress: progress.New(logWriter{t})})
		if err := res[0].Err(); err != nil {
			t.Fatal(err)
		}
		if _, ok := services(t, c)["django-api_api"]; ok {
			t.Error("django-api_api still exists after --prune")
		}
		if _, ok := services(t, c)["postgres_db"]; !ok {
			t.Error("postgres_db was pruned")
		}
		secs, err := c.SecretList(context.Background(), client.SecretListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range secs.Items {
			if strings.HasPrefix(x.Spec.Name, "django-api_") {
				t.Errorf("secret %s still exists after --prune", x.Spec.Name)
			}
		}
	})

	t.Run("apps: a database role on the site's PostgreSQL, and start order", func(t *testing.T) { labAppRoleAndOrder(t, e, cur) })
	t.Run("apps: the Django API as an app, with the lab's health check per site", func(t *testing.T) { labAPIAsApp(t, e, cur) })
}

// ownSteps runs `sitectl plan -o json` for douala and counts the pending steps of
// this package's components. Exit code 2 must go with pending steps.
func ownSteps(t *testing.T, bin string, args []string) int {
	t.Helper()
	cmd := exec.Command(bin, append(args, "plan", "--site", "douala", "-o", "json")...)
	out, _ := cmd.Output()
	var p plan.Plan
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	// Parts planned after the stacks (replication...) may fail while the databases
	// are not deployed yet: exit 1 then, but never because of this package's parts.
	code := cmd.ProcessState.ExitCode()
	failed := false
	for _, sp := range p.Sites {
		if strings.HasPrefix(sp.Error, "swarm: ") || strings.HasPrefix(sp.Error, "stacks: ") || strings.Contains(sp.Error, "; stacks: ") {
			t.Fatalf("plan of %s failed in this package's parts: %s", sp.Site, sp.Error)
		}
		failed = failed || sp.Error != ""
	}
	switch {
	case failed && code != 1, !failed && (code == 2) != (p.Changes() > 0):
		t.Fatalf("plan exit %d with %d changes, failed=%v (want 1 on failure, else 2 with changes, 0 without)", code, p.Changes(), failed)
	}
	n := 0
	for _, sp := range p.Sites {
		for _, st := range sp.Steps {
			switch st.Component {
			case ComponentNetwork, ComponentSecret, ComponentConfig, ComponentService:
				if st.Action != plan.Noop {
					n++
				}
			}
		}
	}
	return n
}

func secretName(s swarm.Service, target string) string {
	for _, r := range s.Spec.TaskTemplate.ContainerSpec.Secrets {
		if r.File != nil && r.File.Name == target {
			return r.SecretName
		}
	}
	return ""
}
