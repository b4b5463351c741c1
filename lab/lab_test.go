package lab_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/images"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/sites"
	pgstack "github.com/sitectl/sitectl/stacks/postgres"
	"github.com/sitectl/sitectl/swarm"
)

// The lab's own tests use their own prefix, so they never touch a lab an operator
// or another package's tests run.
const testPrefix = "lb"

func testOptions(t *testing.T) lab.Options {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sites")
	if err := labtest.CopyConfig(filepath.Join("..", "sites"), dir); err != nil {
		t.Fatal(err)
	}
	return lab.Options{ConfigDir: dir, Prefix: testPrefix, StateDir: lab.DefaultStateDir + "-" + testPrefix}
}

// snapshot is what the root namespace looks like from outside the lab.
type snapshot struct {
	namespaces []string
	links      []string
	mounts     []string
	iptables   []string
	routes     []string
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

func takeSnapshot(t *testing.T) snapshot {
	t.Helper()
	var s snapshot
	s.namespaces, _ = netns.List()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.links = append(s.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	if out, err := exec.Command("ip", "route", "show", "table", "all").Output(); err == nil {
		s.routes = strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 {
			s.mounts = append(s.mounts, fs[4])
		}
	}
	if out, err := exec.Command("iptables-save").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			s.iptables = append(s.iptables, counters.ReplaceAllString(l, ""))
		}
	}
	return s
}

func added(before, after []string) []string {
	have := map[string]bool{}
	for _, b := range before {
		have[b] = true
	}
	var out []string
	for _, a := range after {
		if !have[a] {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func TestLabUpStatusDown(t *testing.T) {
	labtest.Skip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	opts := testOptions(t)
	// A crashed earlier run of this test is cleared first.
	if _, err := lab.Down(ctx, opts); err != nil {
		t.Fatalf("clearing an earlier test lab: %v", err)
	}
	before := takeSnapshot(t)

	res, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("lab up from nothing: %v", err)
	}
	downDone := false
	defer func() {
		if !downDone {
			_, _ = lab.Down(context.Background(), opts)
		}
	}()
	if !res.Changed {
		t.Error("first lab up reports no change")
	}
	topo, err := sites.Load(sites.Options{Dir: opts.ConfigDir, Env: lab.EnvName, Environ: []string{}})
	if err != nil {
		t.Fatalf("the lab environment written by lab up does not validate: %v", err)
	}
	env, _ := os.ReadFile(filepath.Join(opts.ConfigDir, sites.CurrentEnvFile))
	if strings.TrimSpace(string(env)) != lab.EnvName {
		t.Errorf(".sitectl-env = %q, want %q", env, lab.EnvName)
	}

	t.Run("engines swarms and labels", func(t *testing.T) {
		st, err := lab.GetStatus(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Up {
			t.Fatalf("status not up: %s", st.Problem)
		}
		for _, s := range st.Sites {
			site := topo.Site(s.Name)
			if !strings.HasPrefix(s.Gateway.Charon, "charon ") {
				t.Errorf("%s: charon: %s", s.Name, s.Gateway.Charon)
			}
			if len(s.Nodes) != len(site.Nodes) {
				t.Fatalf("%s: %d engines, config has %d nodes", s.Name, len(s.Nodes), len(site.Nodes))
			}
			for i, n := range s.Nodes {
				want := site.Nodes[i]
				if n.Error != "" || n.Version == "" {
					t.Errorf("%s: engine does not answer: %s", n.Node, n.Error)
					continue
				}
				if n.SwarmRole != want.Role || n.NodeState != "ready" {
					t.Errorf("%s: swarm %s %s, want %s ready", n.Node, n.SwarmRole, n.NodeState, want.Role)
				}
				for k, v := range swarm.DesiredLabels(site, &want) {
					if n.Labels[k] != v {
						t.Errorf("%s: label %s = %q, want %q", n.Node, k, n.Labels[k], v)
					}
				}
			}
		}
		reals, standins := 0, 0
		for _, im := range st.Images {
			if im.Real {
				reals++
			} else {
				standins++
			}
		}
		if reals < 3 || standins < 6 {
			t.Errorf("images: %d real, %d stand-ins; want postgres, prometheus, django-api real and 6+ stand-ins", reals, standins)
		}
	})

	t.Run("second up and swarm plan change nothing", func(t *testing.T) {
		res, err := lab.Up(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed {
			t.Error("second lab up changed something")
		}
		for _, site := range topo.Sites {
			engines, closeAll, err := swarm.Open(ctx, site)
			if err != nil {
				t.Fatal(err)
			}
			steps, err := swarm.Plan(ctx, site, engines)
			closeAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != 0 {
				t.Errorf("%s: swarm plan after lab up has %d step(s): %v", site.Name, len(steps), steps)
			}
		}
	})

	t.Run("a rebuilt image removes the one it replaced, unless a container uses it", func(t *testing.T) {
		built, err := (&images.Builder{CacheDir: lab.DefaultImageCache, SourceDirs: []string{opts.ConfigDir}}).BuildAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(built) < 2 {
			t.Fatalf("%d lab images", len(built))
		}
		host := engineOf(t, res.State.Layout, "douala-app1")
		docker := dockerOn(ctx, t, res.State.Layout, "douala-app1")
		c, err := client.New(client.WithHost(host))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		// Two "earlier builds" of two lab images: lab-labelled images under their names.
		dir := t.TempDir()
		old := map[string]string{} // ref -> image ID
		for i, b := range built[:2] {
			df := fmt.Sprintf("FROM scratch\nLABEL %s=earlier-%d\nCMD [\"/standin\"]\n", images.LabelKey, i)
			if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
				t.Fatal(err)
			}
			docker("build", "-q", "-t", b.Ref, dir)
			old[b.Ref] = docker("image", "inspect", "-f", "{{.Id}}", b.Ref)
		}
		inUse, unused := built[0].Ref, built[1].Ref
		ctr := docker("create", inUse)
		defer func() { _ = exec.Command("docker", "-H", host, "rm", "-f", ctr).Run() }()

		n, err := images.Load(ctx, c, built)
		if err != nil || n != 2 {
			t.Fatalf("load: %d loaded, err %v; want the 2 replaced", n, err)
		}
		for _, b := range built[:2] {
			if got := docker("image", "inspect", "-f", `{{index .Config.Labels "`+images.LabelKey+`"}}`, b.Ref); got != b.Key {
				t.Errorf("%s has key %s after load, want %s", b.Ref, got, b.Key)
			}
		}
		exists := func(id string) bool {
			return exec.Command("docker", "-H", host, "image", "inspect", id).Run() == nil
		}
		if exists(old[unused]) {
			t.Errorf("the replaced image of %s (%s) is still there, untagged", unused, old[unused])
		}
		if !exists(old[inUse]) {
			t.Fatalf("the replaced image of %s was removed though a container uses it", inUse)
		}
		// Once the container is gone, the next load removes the untagged lab image.
		docker("rm", "-f", ctr)
		if n, err := images.Load(ctx, c, built); err != nil || n != 0 {
			t.Fatalf("second load: %d loaded, err %v", n, err)
		}
		if exists(old[inUse]) {
			t.Errorf("the untagged lab image %s is still there after the container went", old[inUse])
		}
	})

	t.Run("overlay from douala app node to db node", func(t *testing.T) {
		app := dockerOn(ctx, t, res.State.Layout, "douala-app1")
		db := dockerOn(ctx, t, res.State.Layout, "douala-db1")
		app("network", "create", "-d", "overlay", "--attachable", "lbnet")
		db("run", "-d", "--name", "lbsrv", "--network", "lbnet", "sitectl-lab/kong:standin")
		ip := db("inspect", "-f", `{{(index .NetworkSettings.Networks "lbnet").IPAddress}}`, "lbsrv")
		if !strings.HasPrefix(ip, "10.110.") {
			t.Errorf("overlay address %q is not from douala's pool 10.110.0.0/16", ip)
		}
		app("run", "--rm", "--network", "lbnet", "sitectl-lab/kong:standin", "curl", "-f", "http://"+ip+":8001/status")
		// And the answer says it is a stand-in.
		cmd := exec.CommandContext(ctx, "docker", "-H", engineOf(t, res.State.Layout, "douala-app1"), "run", "--rm", "--network", "lbnet", "sitectl-lab/kong:standin", "curl", "-f", "http://"+ip+":9999/")
		if err := cmd.Run(); err == nil {
			t.Error("a closed port on the db node answered: the check cannot fail")
		}
	})

	t.Run("real postgres, django and prometheus images serve", func(t *testing.T) {
		l := res.State.Layout
		docker := dockerOn(ctx, t, l, "douala-db1")
		pw := filepath.Join(opts.StateDir, "secrets", "postgres-password")
		docker("run", "-d", "--name", "lbpg", "-v", pw+":/run/secrets/pg:ro", "-e", "POSTGRES_PASSWORD_FILE=/run/secrets/pg",
			"-e", "POSTGRES_USER=sitectl", "-e", "POSTGRES_DB=app", "-p", "5432:5432", "sitectl-lab/postgres:15")
		docker("run", "-d", "--name", "lbapi", "-v", pw+":/run/secrets/pg:ro", "-e", "SITE_ID=douala", "-e", "DB_HOST=10.10.0.12",
			"-e", "DB_USER=sitectl", "-e", "DB_NAME=app", "-e", "DB_PASSWORD_FILE=/run/secrets/pg", "-p", "8000:8000", "sitectl-lab/django-api:lab")
		// From the site's gateway namespace, as sitectl reaches a site's LAN.
		hc := netns.HTTPClient(l.Site("douala").GatewayNS, 5*time.Second)
		var body string
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := hc.Post("http://10.10.0.12:8000/rows", "application/json", strings.NewReader(`{"body":"from the lab test"}`))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == 201 {
					body = string(b)
					break
				}
				err = fmt.Errorf("%s: %s", resp.Status, b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST /rows: %v\napi log: %s", err, docker("logs", "--tail", "20", "lbapi"))
			}
			time.Sleep(500 * time.Millisecond)
		}
		var row struct{ ID, Site string }
		if err := json.Unmarshal([]byte(body), &row); err != nil {
			t.Fatal(err)
		}
		id, err := uuid.Parse(row.ID)
		if err != nil || id.Version() != 7 || row.Site != "douala" {
			t.Errorf("row = %s: want a UUIDv7 key owned by douala (%v)", body, err)
		}
		// The row is in the real PostgreSQL, read with its own client.
		out := docker("exec", "lbpg", "psql", "-U", "sitectl", "-d", "app", "-Atc", "SELECT site, id FROM lab_rows")
		if out != "douala|"+row.ID {
			t.Errorf("lab_rows in PostgreSQL = %q, want douala|%s", out, row.ID)
		}
		// The postgres stack's health check passes here, at once and after retries
		// (its loop sleeps with the image's sleep): pointed at a port nothing listens
		// on, it fails after its tries, not at the first.
		test := pgstack.HealthTest(&sites.Site{Postgres: sites.Postgres{User: "sitectl", Database: "app"}}, time.Second)
		docker(append([]string{"exec", "lbpg"}, test[1:]...)...)
		start := time.Now()
		fail := exec.CommandContext(ctx, "docker", append([]string{"-H", engineOf(t, l, "douala-db1"), "exec", "lbpg"}, append(test[1:], "-p", "5999")...)...)
		if out, err := fail.CombinedOutput(); err == nil || fail.ProcessState.ExitCode() != 1 || time.Since(start) < time.Second {
			t.Errorf("the health check against a closed port: %v after %s, want exit 1 after its tries (1 s of sleeps)\n%s", err, time.Since(start), out)
		}
		// Prometheus (Debian's) answers too.
		docker("run", "-d", "--name", "lbprom", "-p", "9090:9090", "sitectl-lab/prometheus:lab")
		for deadline := time.Now().Add(60 * time.Second); ; {
			r, err := hc.Get("http://10.10.0.12:9090/-/ready")
			if err == nil {
				b, _ := io.ReadAll(r.Body)
				_ = r.Body.Close()
				if r.StatusCode == 200 && strings.Contains(string(b), "Ready") {
					break
				}
				err = fmt.Errorf("%s: %s", r.Status, b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("prometheus /-/ready: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		resp, err := hc.Post("http://10.10.0.12:8000/rows", "application/json", strings.NewReader(`{"site":"cloud"}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("writing another site's row: %s, want 403", resp.Status)
		}
	})

	t.Run("postgres image: the template user's cluster is copied, any other user gets initdb", func(t *testing.T) {
		host := engineOf(t, res.State.Layout, "yaounde-node1")
		docker := dockerOn(ctx, t, res.State.Layout, "yaounde-node1")
		for _, c := range []struct{ user, db string }{{"sitectl", "app"}, {"shop", "orders"}} {
			name := "lbpg-" + c.user
			password := "pw-" + c.user + "-'quoted"
			docker("run", "-d", "--name", name, "--network", "none", "-e", "POSTGRES_USER="+c.user,
				"-e", "POSTGRES_PASSWORD="+password, "-e", "POSTGRES_DB="+c.db, "sitectl-lab/postgres:15")
			t.Cleanup(func() { _ = exec.Command("docker", "-H", host, "rm", "-f", name).Run() })
			psql := func(pw, sql string) (string, error) {
				out, err := exec.CommandContext(ctx, "docker", "-H", host, "exec", "-e", "PGPASSWORD="+pw, name,
					"psql", "-h", "127.0.0.1", "-U", c.user, "-d", c.db, "-Atc", sql).CombinedOutput()
				return strings.TrimSpace(string(out)), err
			}
			// Over TCP, so the password (scram-sha-256) is checked, not trusted.
			var got string
			var err error
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
				got, err = psql(password, "SELECT current_user, current_database(), rolsuper FROM pg_roles WHERE rolname = current_user")
				if err == nil || time.Now().After(deadline) {
					break
				}
			}
			if want := c.user + "|" + c.db + "|t"; err != nil || got != want {
				t.Fatalf("%s: psql as %s = %q (%v), want %q\nlog: %s", name, c.user, got, err, want, docker("logs", "--tail", "30", name))
			}
			if out, err := psql("wrong", "SELECT 1"); err == nil || !strings.Contains(out, "password authentication failed") {
				t.Errorf("%s: a wrong password was not refused: %q (%v)", name, out, err)
			}
			logs := docker("logs", name)
			copied := strings.Contains(logs, "copied from the image's template cluster")
			if ran := strings.Contains(logs, "creating subdirectories"); copied == ran || copied != (c.user == "sitectl") {
				t.Errorf("%s (user %s): template copied=%v, initdb ran=%v; want the template only for the image's template user\n%s", name, c.user, copied, ran, logs)
			}
			if strings.Contains(logs, password) {
				t.Errorf("%s: the password appears in the container log", name)
			}
		}
	})

	t.Run("no route around the tunnels", func(t *testing.T) {
		l := res.State.Layout
		dial := func(ns, addr string) error {
			c, err := netns.DialContext(ctx, ns, "tcp", addr)
			if err == nil {
				_ = c.Close()
			}
			return err
		}
		if err := dial(l.Site("douala").GatewayNS, "10.10.0.11:2377"); err != nil {
			t.Fatalf("douala's gateway cannot reach its own manager: %v", err)
		}
		if err := dial(l.WANNS, "10.10.0.11:2377"); err == nil {
			t.Error("the WAN namespace reaches douala's LAN directly")
		}
		if err := dial(l.Site("douala").GatewayNS, "10.30.0.11:2377"); err == nil {
			t.Error("douala's gateway reaches cloud's LAN without a tunnel")
		}
		// (The root namespace is not dialled: its default route leaves the machine.
		// That lab up adds no route there is checked by the before/after snapshot.)
		// Lookups are refused in the lab (no outside DNS) by a local resolver, rather
		// than sent to the machine's resolvers.
		node := l.Site("douala").Nodes[0].NS
		if out, err := netns.Run(ctx, node, "cat", "/etc/resolv.conf"); err != nil || !strings.Contains(string(out), "nameserver 127.0.0.1") {
			t.Errorf("resolv.conf in %s: %v %s", node, err, out)
		}
		if _, err := netns.Run(ctx, node, "getent", "hosts", "registry-1.docker.io"); err == nil {
			t.Error("an outside name resolved inside the lab")
		}
		// charon's userspace IPsec has its TUN device in each gateway.
		for _, sl := range l.Sites {
			if _, err := netns.Run(ctx, sl.GatewayNS, "ip", "link", "show", "dev", "ipsec0"); err != nil {
				t.Errorf("%s: no ipsec0 TUN device from charon (kernel-libipsec): %v", sl.Name, err)
			}
		}
		// The WAN itself works: gateway to gateway.
		if out, err := netns.Run(ctx, l.Site("douala").GatewayNS, "ip", "route", "get", "203.0.113.30"); err != nil || !strings.Contains(string(out), "wan0") {
			t.Errorf("douala's gateway has no WAN route to cloud's gateway: %v %s", err, out)
		}
	})

	t.Run("engine and vici over ssh:// through a real sshd", func(t *testing.T) { testOverSSH(ctx, t, res.State.Layout) })

	t.Run("crashed daemon is a stale lab", func(t *testing.T) {
		st, err := lab.ReadState(opts.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		var charon *lab.Process
		for i := range st.Processes {
			if st.Processes[i].Name == "charon yaounde" {
				charon = &st.Processes[i]
			}
		}
		if charon == nil {
			t.Fatal("no charon yaounde recorded")
		}
		if err := syscall.Kill(charon.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); charon.Alive() && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		status, err := lab.GetStatus(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if status.Up || !strings.Contains(status.Problem, "charon yaounde") {
			t.Errorf("status after a crash: up=%v problem=%q", status.Up, status.Problem)
		}
		_, err = lab.Up(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), "stale lab state") || !strings.Contains(err.Error(), "lab down") {
			t.Errorf("lab up over a crashed lab: %v; want a stale-state error naming `lab down`", err)
		}
	})

	// lab down removes everything lab up made, and nothing else.
	st, _ := lab.ReadState(opts.StateDir)
	var labPIDs []int
	for _, p := range st.Processes {
		if p.Alive() {
			labPIDs = append(labPIDs, p.PID)
		}
	}
	inNS, _ := netns.PIDs(st.Namespaces...)
	labPIDs = append(labPIDs, inNS...)
	if len(labPIDs) < 5 {
		t.Errorf("only %d lab processes found before down", len(labPIDs))
	}
	start := time.Now()
	dres, err := lab.Down(ctx, opts)
	downDone = true
	if err != nil {
		t.Fatalf("lab down: %v", err)
	}
	t.Logf("lab down: %s, %d processes, %d namespaces", time.Since(start).Round(10*time.Millisecond), dres.Processes, len(dres.Namespaces))
	after := takeSnapshot(t)
	for _, ns := range after.namespaces {
		if strings.HasPrefix(ns, testPrefix+"-") {
			t.Errorf("namespace %s is left", ns)
		}
	}
	if left, _ := filepath.Glob("/etc/netns/" + testPrefix + "-*"); len(left) > 0 {
		t.Errorf("resolver files left: %v", left)
	}
	if a := added(before.links, after.links); len(a) > 0 {
		t.Errorf("links added to the root namespace: %v", a)
	}
	if a := added(before.mounts, after.mounts); len(a) > 0 {
		for _, m := range a {
			if strings.HasPrefix(m, opts.StateDir) || strings.HasPrefix(m, "/run/netns/"+testPrefix+"-") {
				t.Errorf("mount left: %s", m)
			}
		}
	}
	if a := added(before.routes, after.routes); len(a) > 0 {
		t.Errorf("routes added in the root namespace: %v", a)
	}
	if a := added(before.iptables, after.iptables); len(a) > 0 {
		t.Errorf("iptables rules added in the root namespace: %v", a)
	}
	for _, pid := range labPIDs {
		if err := syscall.Kill(pid, 0); err == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(b), ") Z") {
				t.Errorf("lab process %d is still running", pid)
			}
		}
	}
	if _, err := os.Stat(opts.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s is left (%v)", opts.StateDir, err)
	}
	if _, err := os.Stat(lab.OverlayPath(opts.ConfigDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("env overlay is left")
	}
	// A second down has nothing to do.
	if dres, err := lab.Down(ctx, opts); err != nil || dres.Processes != 0 || len(dres.Namespaces) != 0 {
		t.Errorf("second lab down: %+v, %v", dres, err)
	}
}

// dockerOn returns a docker CLI runner for a lab node that fails the test on error.
func dockerOn(ctx context.Context, t *testing.T, l *lab.Layout, node string) func(args ...string) string {
	host := engineOf(t, l, node)
	return func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", host}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
}

func engineOf(t *testing.T, l *lab.Layout, node string) string {
	t.Helper()
	_, n := l.Node(node)
	if n == nil {
		t.Fatalf("no lab node %s", node)
	}
	return n.Engine()
}
