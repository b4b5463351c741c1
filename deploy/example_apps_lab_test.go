package deploy

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/sites"
)

// exampleLabPrefix names TestLabExampleApps's lab (namespaces dex-*).
const exampleLabPrefix = "dex"

// TestLabExampleApps deploys the repository's example apps (apps/: the nginx
// front-end at every site, the Django identity provider at the hub) on a lab whose
// sites run no built-in stack, with the lab's real nginx and Django images. Each
// converges where it is declared and answers at its service: the front-end's page,
// script, health path and one-page fallback at every site; the identity provider
// issues a token and verifies it (and refuses a forged one), and its metrics are
// published on the hub's node. status lists each site's apps as running. A second
// deploy changes nothing.
// (The lab's Kong is a stand-in: the routes are checked at the services.)
func TestLabExampleApps(t *testing.T) {
	dir := startLabWith(t, "[]", exampleLabPrefix).dir
	names, err := apps.Names("../apps")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := sites.Load(sites.Options{Dir: dir, Env: "lab", Environ: []string{}, KnownStacks: append(names, sites.KnownStacks...)})
	if err != nil {
		t.Fatal(err)
	}
	list, ps := apps.Load(apps.Options{Dir: "../apps", Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	start := time.Now()
	deployOK(t, topo)
	t.Logf("first deploy of the example apps: %s", time.Since(start).Round(100*time.Millisecond))

	t.Run("each app converges where it is declared", func(t *testing.T) {
		for _, s := range topo.Sites {
			svcs := services(t, (&labEnv{dir: dir}).manager(t, topo, s.Name))
			for _, a := range topo.Apps {
				as, runs := a.Sites[s.Name]
				svc, ok := svcs[a.Name+"_"+a.Service]
				switch {
				case !runs && ok:
					t.Errorf("%s: %s runs here but declares sites %v", s.Name, svc.Spec.Name, a.Sites)
				case runs && !ok:
					t.Errorf("%s: no service %s_%s", s.Name, a.Name, a.Service)
				case runs && (svc.ServiceStatus == nil || int(svc.ServiceStatus.RunningTasks) != as.Replicas):
					t.Errorf("%s: %s status %+v, want %d running", s.Name, svc.Spec.Name, svc.ServiceStatus, as.Replicas)
				case runs && !strings.HasPrefix(svc.Spec.TaskTemplate.ContainerSpec.Image, "sitectl-lab/"):
					t.Errorf("%s: %s runs %s, not a lab image", s.Name, svc.Spec.Name, svc.Spec.TaskTemplate.ContainerSpec.Image)
				}
			}
		}
	})

	t.Run("status lists each site's apps, running", func(t *testing.T) {
		for _, st := range Status(context.Background(), topo, topo.Sites, Options{Environ: []string{}}) {
			var got []string
			for _, a := range st.Apps {
				got = append(got, a.Name+" "+a.State)
			}
			var want []string
			for _, a := range topo.AppsAt(st.Site) {
				want = append(want, a.Name+" "+AppRunning)
			}
			if st.Error != "" || strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("%s: status apps %v (error %q), want %v", st.Site, got, st.Error, want)
			}
		}
	})

	t.Run("the front-end answers at every site", func(t *testing.T) {
		for _, s := range topo.Sites {
			pid := containerPID(t, topo.Site(s.Name), "frontend_web")
			for path, want := range map[string]string{"/": "sitectl example front-end", "/app.js": "/auth/token", "/healthz": "ok", "/some/page": "sitectl example front-end"} {
				if got := inNetns(t, pid, "-fsS", "http://127.0.0.1:8080"+path); !strings.Contains(got, want) {
					t.Errorf("%s: frontend %s = %q, want %q", s.Name, path, got, want)
				}
			}
		}
	})

	t.Run("the identity provider issues and verifies tokens at the hub", func(t *testing.T) {
		hub := topo.Site(topo.Hub)
		pid := containerPID(t, hub, "identity_idp")
		tok := inNetns(t, pid, "-fsS", "-X", "POST", "-d", `{"user": "alice"}`, "http://127.0.0.1:8000/auth/token")
		_, rest, ok := strings.Cut(tok, `"token": "`)
		token, _, ok2 := strings.Cut(rest, `"`)
		if !ok || !ok2 || token == "" {
			t.Fatalf("POST /auth/token = %q", tok)
		}
		if got := inNetns(t, pid, "-fsS", "-H", "Authorization: Bearer "+token, "http://127.0.0.1:8000/auth/verify"); !strings.Contains(got, `"sub": "alice"`) {
			t.Errorf("verify = %q, want alice", got)
		}
		if got := inNetns(t, pid, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer x"+token, "http://127.0.0.1:8000/auth/verify"); got != "401" {
			t.Errorf("verify of a forged token: HTTP %s, want 401", got)
		}
		// The metrics port sitectl published (host mode on the lab) on the hub's node.
		ns, err := lab.ResolveNamespace(lab.Options{Prefix: exampleLabPrefix}, hub.Name+"/"+nodeOf(t, hub, "identity_idp"))
		if err != nil {
			t.Fatal(err)
		}
		idp := topo.App("identity")
		out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-fsS", fmt.Sprintf("http://127.0.0.1:%d%s", idp.MetricsPublished, idp.MetricsPath)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "idp_tokens_issued_total 1") {
			t.Errorf("metrics at the published port: %v\n%s", err, out)
		}
	})

	t.Run("a second deploy changes nothing", func(t *testing.T) {
		if p := planOf(t, topo); p.Changes() != 0 {
			t.Fatalf("plan after deploy: %d changes: %+v", p.Changes(), changed(p))
		}
		start := time.Now()
		for _, r := range deployOK(t, topo) {
			if len(r.Applied) != 0 {
				t.Errorf("%s: second deploy applied %+v", r.Site, r.Applied)
			}
		}
		t.Logf("no-op deploy of the example apps: %s", time.Since(start).Round(100*time.Millisecond))
	})
}

type container struct{ node, id string }

// containerID finds a running task container of service at site, on any node.
func containerID(t *testing.T, s *sites.Site, service string) container {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		for _, n := range s.Nodes {
			out, err := dockerAt(s, n.Name, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service)
			if err != nil {
				t.Fatal(err)
			}
			if ids := strings.Fields(out); len(ids) > 0 {
				return container{node: n.Name, id: ids[0]}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no running container of %s", s.Name, service)
		}
	}
}

func nodeOf(t *testing.T, s *sites.Site, service string) string {
	return containerID(t, s, service).node
}

// containerPID is the host PID of a container of service (the lab's engines share
// this machine's PID namespace), to run this machine's curl in its network.
func containerPID(t *testing.T, s *sites.Site, service string) string {
	t.Helper()
	c := containerID(t, s, service)
	out, err := dockerAt(s, c.node, "inspect", "-f", "{{.State.Pid}}", c.id)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// inNetns runs curl with args in the network namespace of process pid, retrying
// for 30 s while the service starts; it returns curl's output.
func inNetns(t *testing.T, pid string, args ...string) string {
	t.Helper()
	var out []byte
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		out, err = exec.Command("nsenter", append([]string{"-t", pid, "-n", "curl", "--max-time", "5"}, args...)...).CombinedOutput()
		if err == nil {
			return string(out)
		}
	}
	t.Errorf("curl %s in the netns of %s: %v\n%s", strings.Join(args, " "), pid, err, out)
	return string(out)
}

// dockerAt runs the docker CLI against node's own engine.
func dockerAt(s *sites.Site, node string, args ...string) (string, error) {
	i := slices.IndexFunc(s.Nodes, func(n sites.Node) bool { return n.Name == node })
	if i < 0 || s.Nodes[i].Engine == "" {
		return "", fmt.Errorf("%s: node %s has no engine address", s.Name, node)
	}
	out, err := exec.Command("docker", append([]string{"-H", s.Nodes[i].Engine}, args...)...).CombinedOutput()
	return string(out), err
}
