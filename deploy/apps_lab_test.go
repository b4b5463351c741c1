package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// appsLabPrefix names TestLabApps's lab (namespaces dap-*).
const appsLabPrefix = "dap"

// TestLabApps deploys the fixture apps (internal/apps/testdata/apps: hello, with
// x-sitectl, and plain, a file written for plain `docker stack deploy`) on a lab
// whose sites run no built-in stack: both converge at every site they declare, a
// second deploy changes nothing, a new image for hello rolls hello only (deploy
// --app plain leaves it pending, deploy --app hello applies it), an app whose
// image is missing fails alone (hello and plain untouched, the error names it), and
// with hello's folder removed deploy --prune removes hello and keeps plain.
func TestLabApps(t *testing.T) {
	// Only the apps: the built-in stacks have their own lab tests.
	dir := startLabWith(t, "[]", appsLabPrefix).dir
	appsDir := filepath.Join(t.TempDir(), "apps")
	if err := os.CopyFS(appsDir, os.DirFS("../internal/apps/testdata/apps")); err != nil {
		t.Fatal(err)
	}

	// One node per site with host-mode ports: one hello task per site (hello
	// publishes its metrics port), set the way an operator would, by --set.
	base := []string{"values.hello.replicas=1"}
	load := func(t *testing.T, set ...string) *sites.Topology {
		t.Helper()
		names, err := apps.Names(appsDir)
		if err != nil {
			t.Fatal(err)
		}
		topo, err := sites.Load(sites.Options{Dir: dir, Env: "lab", Environ: []string{}, Set: append(slices.Clone(base), set...),
			KnownStacks: append(names, sites.KnownStacks...)})
		if err != nil {
			t.Fatal(err)
		}
		labreach.Install(topo)
		list, ps := apps.Load(apps.Options{Dir: appsDir, Topo: topo, Environ: []string{}})
		if len(ps) > 0 {
			t.Fatal(ps)
		}
		topo.Apps = list
		return topo
	}
	topo := load(t)
	deployOK(t, topo)

	t.Run("both apps converge at every site they declare", func(t *testing.T) {
		for _, s := range topo.Sites {
			svcs := services(t, (&labEnv{dir: dir}).manager(t, topo, s.Name))
			for _, want := range []string{"hello_web", "plain_echo"} {
				svc, ok := svcs[want]
				if !ok {
					t.Errorf("%s: no service %s", s.Name, want)
					continue
				}
				if svc.ServiceStatus == nil || svc.ServiceStatus.RunningTasks != 1 {
					t.Errorf("%s: %s status %+v, want 1 running task", s.Name, want, svc.ServiceStatus)
				}
				if app, _, _ := strings.Cut(want, "_"); svc.Spec.Labels[stacks.LabelApp] != app {
					t.Errorf("%s: %s labels %v", s.Name, want, svc.Spec.Labels)
				}
			}
		}
	})

	t.Run("a second deploy changes nothing", func(t *testing.T) {
		if p := planOf(t, topo); p.Changes() != 0 {
			t.Fatalf("plan after deploy: %d changes: %+v", p.Changes(), changed(p))
		}
		before := map[string]swarm.Service{}
		for _, s := range topo.Sites {
			for name, svc := range services(t, (&labEnv{dir: dir}).manager(t, topo, s.Name)) {
				before[s.Name+"/"+name] = svc
			}
		}
		for _, r := range deployOK(t, topo) {
			if len(r.Applied) != 0 {
				t.Errorf("%s: second deploy applied %+v", r.Site, r.Applied)
			}
		}
		// 0 service updates, as the engines see it (not only as sitectl reports).
		for _, s := range topo.Sites {
			for name, svc := range services(t, (&labEnv{dir: dir}).manager(t, topo, s.Name)) {
				if b, ok := before[s.Name+"/"+name]; !ok || b.Version != svc.Version || !b.UpdatedAt.Equal(svc.UpdatedAt) {
					t.Errorf("%s: the second deploy updated %s (version %d → %d)", s.Name, name, b.Version.Index, svc.Version.Index)
				}
			}
		}
	})

	t.Run("a new image for hello rolls hello only", func(t *testing.T) {
		before := map[string]uint64{}
		for _, s := range topo.Sites {
			before[s.Name] = services(t, (&labEnv{dir: dir}).manager(t, topo, s.Name))["plain_echo"].Version.Index
		}
		// The same stand-in binary under another tag: a new image reference.
		moved := load(t, "values.hello.image=sitectl-lab/grafana:standin")
		p := planOf(t, moved)
		steps := changed(p)
		if len(steps) != len(moved.Sites) {
			t.Errorf("plan: %v, want one hello_web update per site", steps)
		}
		for _, st := range steps {
			if st.Component != "service" || st.Name != "hello_web" || st.Action != plan.Update {
				t.Errorf("plan changes %s %s %s, want only the hello_web update", st.Action, st.Component, st.Name)
			}
		}
		// deploy --app plain: hello's new image is not applied, plain is unchanged.
		for _, r := range Deploy(context.Background(), moved, moved.Sites, []plan.Part{Stacks, Apps}, Options{Environ: []string{}, Poll: testOpts(t).Poll, Progress: testOpts(t).Progress, Stacks: []string{"plain"}}) {
			if r.Err() != nil || len(r.Applied) != 0 {
				t.Errorf("%s: deploy --app plain: applied %v, err %v; want nothing", r.Site, r.Applied, r.Err())
			}
		}
		if p := planOf(t, moved); len(changed(p)) != len(moved.Sites) {
			t.Errorf("after deploy --app plain, plan %v: hello_web's update should still be pending", changed(p))
		}
		// deploy --app hello applies it.
		for _, r := range Deploy(context.Background(), moved, moved.Sites, []plan.Part{Stacks, Apps}, Options{Environ: []string{}, Poll: testOpts(t).Poll, Progress: testOpts(t).Progress, Stacks: []string{"hello"}}) {
			if r.Err() != nil || len(r.Applied) != 1 || r.Applied[0].Name != "hello_web" {
				t.Errorf("%s: deploy --app hello: applied %v, err %v; want the hello_web update", r.Site, r.Applied, r.Err())
			}
		}
		deployOK(t, moved)
		for _, s := range moved.Sites {
			svcs := services(t, (&labEnv{dir: dir}).manager(t, moved, s.Name))
			if got := svcs["hello_web"].Spec.TaskTemplate.ContainerSpec.Image; !strings.HasPrefix(got, "sitectl-lab/grafana:standin") {
				t.Errorf("%s: hello_web runs %s", s.Name, got)
			}
			if svcs["plain_echo"].Version.Index != before[s.Name] {
				t.Errorf("%s: plain_echo was updated (version %d → %d)", s.Name, before[s.Name], svcs["plain_echo"].Version.Index)
			}
		}
	})

	t.Run("an app whose image is missing fails alone", func(t *testing.T) {
		broken := filepath.Join(appsDir, "broken")
		if err := os.MkdirAll(broken, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "services:\n  web:\n    image: sitectl-lab/missing:1\nx-sitectl:\n  port: 8080\n  routes: [{path: /broken}]\n"
		if err := os.WriteFile(filepath.Join(broken, "compose.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		before := map[string]map[string]uint64{}
		for _, s := range topo.Sites {
			svcs := services(t, (&labEnv{dir: dir}).manager(t, topo, s.Name))
			before[s.Name] = map[string]uint64{"hello_web": svcs["hello_web"].Version.Index, "plain_echo": svcs["plain_echo"].Version.Index}
		}
		// hello keeps the image the previous subtest gave it: only broken changes.
		withBroken := load(t, "values.hello.image=sitectl-lab/grafana:standin")
		start := time.Now()
		for _, r := range Deploy(context.Background(), withBroken, withBroken.Sites, ownParts, testOpts(t)) {
			if err := r.Err(); err == nil || !strings.Contains(err.Error(), "app broken") || !strings.Contains(err.Error(), "broken_web") ||
				strings.Contains(err.Error(), "app hello") || strings.Contains(err.Error(), "app plain") {
				t.Errorf("%s: deploy with broken: %v; want an error naming app broken and broken_web only", r.Site, err)
			} else {
				t.Logf("%s: %v", r.Site, err)
			}
			for _, st := range r.Applied {
				if st.Group != "app broken" {
					t.Errorf("%s: applied %s (group %q) besides broken", r.Site, st, st.Group)
				}
			}
		}
		t.Logf("deploy with the broken app failed after %s", time.Since(start).Round(100*time.Millisecond))
		for _, s := range withBroken.Sites {
			svcs := services(t, (&labEnv{dir: dir}).manager(t, withBroken, s.Name))
			for name, v := range before[s.Name] {
				if svcs[name].Version.Index != v || svcs[name].ServiceStatus == nil || svcs[name].ServiceStatus.RunningTasks != 1 {
					t.Errorf("%s: %s version %d → %d, status %+v: touched by broken's failure", s.Name, name, v, svcs[name].Version.Index, svcs[name].ServiceStatus)
				}
			}
		}
		if err := os.RemoveAll(broken); err != nil {
			t.Fatal(err)
		}
		clean := load(t, "values.hello.image=sitectl-lab/grafana:standin")
		for _, r := range Deploy(context.Background(), clean, clean.Sites, ownParts, Options{Environ: []string{}, Prune: true, Poll: testOpts(t).Poll, Progress: testOpts(t).Progress}) {
			if r.Err() != nil {
				t.Fatalf("deploy --prune without broken: %v", r.Err())
			}
		}
	})

	t.Run("hello's folder removed, deploy --prune removes it and keeps plain", func(t *testing.T) {
		if err := os.RemoveAll(filepath.Join(appsDir, "hello")); err != nil {
			t.Fatal(err)
		}
		base = nil // values.hello names no stack any more
		gone := load(t)
		sel := gone.Sites
		res := Deploy(context.Background(), gone, sel, ownParts, Options{Environ: []string{}, Prune: true, Poll: testOpts(t).Poll, Progress: testOpts(t).Progress})
		for _, r := range res {
			if r.Err() != nil {
				t.Fatalf("deploy --prune: %v", r.Err())
			}
		}
		for _, s := range gone.Sites {
			c := (&labEnv{dir: dir}).manager(t, gone, s.Name)
			svcs := services(t, c)
			if _, ok := svcs["hello_web"]; ok {
				t.Errorf("%s: hello_web still exists after --prune", s.Name)
			}
			if _, ok := svcs["plain_echo"]; !ok {
				t.Errorf("%s: plain_echo was pruned", s.Name)
			}
			// The engine may still list the network for a moment while the removed
			// service's last task is torn down on its node.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
				nets, err := c.NetworkList(context.Background(), client.NetworkListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				left := slices.ContainsFunc(nets.Items, func(n network.Summary) bool { return n.Name == "hello_default" })
				if !left {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s: network hello_default still exists 30s after deploy --prune", s.Name)
					break
				}
			}
		}
		if p := planOf(t, gone); p.Changes() != 0 {
			t.Errorf("plan after prune: %v", changed(p))
		}
	})
}

// changed lists a plan's steps that change something.
func changed(p *plan.Plan) []plan.Step {
	var out []plan.Step
	for _, sp := range p.Sites {
		for _, st := range sp.Steps {
			if st.Action != plan.Noop {
				out = append(out, st)
			}
		}
	}
	return out
}
