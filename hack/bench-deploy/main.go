// Command bench-deploy measures `sitectl deploy --all` from empty against the same
// rendered compose files deployed with `docker stack deploy`, one site after the
// other, each followed by a wait until its services converged; then a no-op
// re-deploy. It prints the figures and the ratios (goals: sitectl ≤ 0.5 × docker,
// no-op ≤ 5% of the first deploy). Run it on a lab (`sitectl lab up`), as root:
//
//	go run ./hack/bench-deploy --config-dir sites --env lab
//
// Every site is emptied of both tools' objects before each measured run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	_ "github.com/sitectl/sitectl/stacks/all"
	sitectlswarm "github.com/sitectl/sitectl/swarm"
)

func main() {
	var (
		dir, env, only string
		set            multi
		timeout        time.Duration
		verbose        bool
		poll           time.Duration
		allParts       bool
		only1          string
		runs           int
		alone          bool
	)
	flag.StringVar(&dir, "config-dir", "sites", "sites config directory (with the lab overlay)")
	flag.StringVar(&env, "env", "lab", "environment")
	flag.StringVar(&only, "stacks", "", "comma-separated stacks to deploy (default: each site's)")
	flag.Var(&set, "set", "config override key=value or site:key=value (repeatable)")
	flag.DurationVar(&timeout, "timeout", 5*time.Minute, "convergence timeout per run")
	flag.BoolVar(&verbose, "v", false, "sitectl's progress lines on stderr")
	flag.DurationVar(&poll, "poll", 0, "sitectl's convergence poll interval (default: sitectl deploy's, 500ms)")
	flag.BoolVar(&allParts, "all-parts", false, "run every part of deploy.Parts (tunnels, replication...), not only what docker stack deploy does (swarm + stacks)")
	flag.StringVar(&only1, "only", "", "run only one side: docker or sitectl (no ratio)")
	flag.IntVar(&runs, "runs", 1, "measure this many times, then print each ratio, the median and how many met the goal")
	flag.BoolVar(&alone, "alone", false, "also deploy each site alone with sitectl (the others empty) and print what one machine per site would give")
	flag.Parse()
	if runs < 1 {
		fmt.Fprintln(os.Stderr, "bench-deploy: -runs must be 1 or more")
		os.Exit(2)
	}
	if alone && only1 == "docker" {
		fmt.Fprintln(os.Stderr, "bench-deploy: -alone deploys with sitectl; it does not go with -only docker")
		os.Exit(2)
	}
	if err := run(dir, env, only, set, timeout, verbose, poll, allParts, only1, runs, alone); err != nil {
		fmt.Fprintln(os.Stderr, "bench-deploy:", err)
		os.Exit(1)
	}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func run(dir, env, only string, set []string, timeout time.Duration, verbose bool, poll time.Duration, allParts bool, side string, runs int, alone bool) error {
	ctx := context.Background()
	topo, err := sites.Load(sites.Options{Dir: dir, Env: env, Set: set})
	if err != nil {
		return err
	}
	labreach.Install(topo)
	if only != "" {
		for _, s := range topo.Sites {
			s.Stacks = strings.Split(only, ",")
		}
	}
	clients := map[string]*client.Client{}
	for _, s := range topo.Sites {
		c, err := engine.ForSite(ctx, s)
		if err != nil {
			return err
		}
		defer c.Close()
		clients[s.Name] = c
	}
	clean := func() error {
		for _, s := range topo.Sites {
			if err := empty(ctx, clients[s.Name], s); err != nil {
				return fmt.Errorf("empty %s: %w", s.Name, err)
			}
		}
		quiet, err := settle(ctx, topo)
		if err != nil {
			return err
		}
		if verbose {
			fmt.Fprintf(os.Stderr, "machine quiet after the clean-up (%s)\n", quiet.Round(100*time.Millisecond))
		}
		return nil
	}

	once := func() (res result, err error) {
		if err := clean(); err != nil {
			return res, err
		}
		start, cpu0 := time.Now(), busyCPU()
		var perSite []time.Duration
		if side == "" || side == "docker" {
			if perSite, err = dockerStackDeploy(ctx, topo, clients, timeout); err != nil {
				return res, fmt.Errorf("docker stack deploy: %w", err)
			}
		}
		docker, dockerCPU := time.Since(start), busyCPU()-cpu0
		res.docker = docker
		if side != "sitectl" {
			fmt.Printf("docker stack deploy, site after site, until converged: %s (%s)\n", docker.Round(10*time.Millisecond), bySite(topo, perSite))
		}
		if side == "docker" {
			return res, nil
		}

		if err := clean(); err != nil {
			return res, err
		}
		swarmAndStacks := []plan.Part{sitectlswarm.Part{}, deploy.Stacks}
		parts := swarmAndStacks
		if allParts {
			parts = deploy.Parts
		}
		opts := deploy.Options{Poll: poll}
		if verbose {
			opts.Progress = progress.New(&stamped{w: os.Stderr, start: time.Now(), bol: true})
		}
		start, cpu0 = time.Now(), busyCPU()
		if verbose {
			fmt.Fprintf(os.Stderr, "sitectl deploy --all starts at %s\n", start.UTC().Format("15:04:05.000"))
		}
		for _, r := range deploy.Deploy(ctx, topo, topo.Sites, parts, opts) {
			if r.Err() != nil {
				return res, r.Err()
			}
		}
		first, firstCPU := time.Since(start), busyCPU()-cpu0
		start = time.Now()
		noop := 0
		for _, r := range deploy.Deploy(ctx, topo, topo.Sites, parts, opts) {
			if r.Err() != nil {
				return res, r.Err()
			}
			noop += len(r.Applied)
		}
		again := time.Since(start)
		res.first, res.again = first, again
		what := "swarm + stacks parts"
		if allParts {
			what = "every part"
		}
		fmt.Printf("sitectl deploy --all from empty (%s): %s\n", what, first.Round(10*time.Millisecond))
		fmt.Printf("sitectl deploy --all again (no-op, %d steps applied):   %s\n", noop, again.Round(time.Millisecond))
		if side == "" {
			fmt.Printf("ratio sitectl/docker: %.2f (goal ≤ 0.50)\n", first.Seconds()/docker.Seconds())
		}
		fmt.Printf("no-op/first deploy:   %.1f%% (goal ≤ 5%%)\n", 100*again.Seconds()/first.Seconds())
		// The machine's busy CPU time (every process: dockerd and its re-execs, runc,
		// iptables, the containers) shows how close a run came to being CPU-bound: a run
		// that keeps every core busy cannot end before busy/cores.
		n := onlineCPUs()
		cores := float64(n)
		if side != "sitectl" {
			fmt.Printf("CPU busy, docker run:  %.1f CPU-s on %d cores (%.0f%% of its wall time)\n", dockerCPU, n, 100*dockerCPU/cores/docker.Seconds())
		}
		fmt.Printf("CPU busy, sitectl run: %.1f CPU-s on %d cores (%.0f%% of its wall time; no run shorter than %.1fs here)\n", firstCPU, n, 100*firstCPU/cores/first.Seconds(), firstCPU/cores)
		if !alone {
			return res, nil
		}
		// Here the sites share this machine's cores; in the field each site is its own
		// machines. Each site deployed alone (the others empty and idle) shows what
		// --all would take then: the slowest site. A projection, not the goal's figure.
		// Swarm and stacks only, as docker stack deploy: with -all-parts a site alone
		// would wait for its peers' databases, which are empty here.
		var each []time.Duration
		for _, s := range topo.Sites {
			if err := clean(); err != nil {
				return res, err
			}
			t0 := time.Now()
			for _, r := range deploy.Deploy(ctx, topo, []*sites.Site{s}, swarmAndStacks, opts) {
				err = r.Err()
			}
			if err != nil {
				return res, err
			}
			each = append(each, time.Since(t0))
		}
		res.alone = slices.Max(each)
		fmt.Printf("sitectl deploy, one site at a time, the others empty: %s\n", bySite(topo, each))
		if side == "" {
			fmt.Printf("projected ratio with one machine per site (slowest site alone / docker): %.2f\n", slices.Max(each).Seconds()/docker.Seconds())
		}
		return res, nil
	}
	var all []result
	for i := 1; i <= runs; i++ {
		if runs > 1 {
			fmt.Printf("--- run %d of %d\n", i, runs)
		}
		r, err := once()
		if err != nil {
			return err
		}
		all = append(all, r)
	}
	if runs > 1 {
		summarize(all, side)
	}
	return nil
}

// result is one measured run (zero durations for a side not run); alone is the
// slowest site deployed alone (-alone).
type result struct{ docker, first, again, alone time.Duration }

// summarize prints, over several runs, each ratio, the median, and how many runs
// met each goal: one run says little on a machine whose engines' timing varies.
func summarize(all []result, side string) {
	fmt.Printf("--- %d runs\n", len(all))
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		if n := len(v); n%2 == 1 {
			return v[n/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	var ratios, noops, projected []float64
	met, noopMet := 0, 0
	for _, r := range all {
		if r.alone > 0 && r.docker > 0 {
			projected = append(projected, r.alone.Seconds()/r.docker.Seconds())
		}
		if side == "" {
			x := r.first.Seconds() / r.docker.Seconds()
			ratios = append(ratios, x)
			if x <= 0.5 {
				met++
			}
		}
		if side != "docker" {
			y := r.again.Seconds() / r.first.Seconds()
			noops = append(noops, y)
			if y <= 0.05 {
				noopMet++
			}
		}
	}
	if len(ratios) > 0 {
		parts := make([]string, len(ratios))
		for i, x := range ratios {
			parts[i] = fmt.Sprintf("%.2f", x)
		}
		fmt.Printf("ratios sitectl/docker: %s; median %.2f; ≤ 0.50 in %d of %d\n", strings.Join(parts, " "), median(ratios), met, len(ratios))
	}
	if len(projected) > 0 {
		parts := make([]string, len(projected))
		for i, x := range projected {
			parts[i] = fmt.Sprintf("%.2f", x)
		}
		fmt.Printf("projected ratios with one machine per site: %s; median %.2f\n", strings.Join(parts, " "), median(projected))
	}
	if len(noops) > 0 {
		fmt.Printf("no-op/first deploy: median %.1f%%; ≤ 5%% in %d of %d\n", 100*median(noops), noopMet, len(noops))
	}
}

// onlineCPUs counts the cpuN lines of /proc/stat, the CPUs its first line sums
// (runtime.NumCPU follows this process's affinity instead).
func onlineCPUs() int {
	b, _ := os.ReadFile("/proc/stat")
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

// busyCPU is the machine's CPU time spent not idle since boot, in seconds, from the
// first line of /proc/stat (0 where it cannot be read). Ten lines do not call for a
// procfs library in a benchmark command.
func busyCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 2 {
		return 0
	}
	busy := 0.0
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy / 100 // USER_HZ
}

// bySite formats one duration per site, in the topology's order.
func bySite(topo *sites.Topology, d []time.Duration) string {
	var out []string
	for i, s := range topo.Sites {
		if i < len(d) {
			out = append(out, fmt.Sprintf("%s %s", s.Name, d[i].Round(10*time.Millisecond)))
		}
	}
	return strings.Join(out, ", ")
}

// dockerStackDeploy deploys every site's rendered stacks with the docker CLI, one
// site after the other, creating the site networks first (docker stack deploy
// needs external networks to exist) and waiting for each site to converge. It
// returns each site's time.
func dockerStackDeploy(ctx context.Context, topo *sites.Topology, clients map[string]*client.Client, timeout time.Duration) ([]time.Duration, error) {
	var each []time.Duration
	for _, s := range topo.Sites {
		t0 := time.Now()
		host := engine.SiteEndpoint(s).Host
		for _, n := range stacks.SiteNetworks(s) {
			args := []string{"-H", host, "network", "create", "--driver", "overlay", "--subnet", n.Create.IPAM.Config[0].Subnet.String()}
			if _, enc := n.Create.Options["encrypted"]; enc {
				args = append(args, "--opt", "encrypted")
			}
			if n.Create.Attachable {
				args = append(args, "--attachable")
			}
			if err := docker(append(args, n.Name)...); err != nil {
				return nil, err
			}
		}
		work, err := os.MkdirTemp("", "dp-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
		for _, name := range s.Stacks {
			st, err := stacks.Get(name)
			if err != nil {
				return nil, err
			}
			r, err := st.Render(stacks.Input{Topo: topo, Site: s})
			if err != nil {
				return nil, err
			}
			sd := filepath.Join(work, s.Name, name)
			if err := writeStack(sd, s, r); err != nil {
				return nil, err
			}
			if err := docker("-H", host, "stack", "deploy", "--detach=true", "--resolve-image", "never", "-c", filepath.Join(sd, "compose.yaml"), name); err != nil {
				return nil, err
			}
		}
		if err := converged(ctx, clients[s.Name], timeout); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		each = append(each, time.Since(t0))
	}
	return each, nil
}

// writeStack writes the compose file, its config files and its secrets (0600, from
// the site's references) where `docker stack deploy` reads them.
func writeStack(dir string, s *sites.Site, r stacks.Rendered) error {
	files := map[string][]byte{"compose.yaml": r.Compose}
	for k, v := range r.Files {
		files[k] = v
	}
	for key, ref := range s.Secrets {
		v, err := ref.Resolve()
		if err != nil {
			continue // only the secrets a stack names matter; docker reports missing ones
		}
		files[stacks.SecretsDir+key] = v
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func docker(args ...string) error {
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// converged waits until every service of the engine runs its desired tasks.
func converged(ctx context.Context, c *client.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		res, err := c.ServiceList(ctx, client.ServiceListOptions{Status: true})
		if err != nil {
			return err
		}
		var pending []string
		for _, s := range res.Items {
			if st := s.ServiceStatus; st == nil || st.RunningTasks < st.DesiredTasks || st.DesiredTasks == 0 {
				pending = append(pending, s.Spec.Name)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not converged after %s: %s", timeout, strings.Join(pending, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// empty removes the stacks' services, networks, secrets and configs (both tools')
// and waits until the networks could be removed (tasks gone).
func empty(ctx context.Context, c *client.Client, s *sites.Site) error {
	svcs, err := c.ServiceList(ctx, client.ServiceListOptions{})
	if err != nil {
		return err
	}
	for _, x := range svcs.Items {
		if owned(x.Spec.Labels) {
			if _, err := c.ServiceRemove(ctx, x.ID, client.ServiceRemoveOptions{}); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		nets, err := c.NetworkList(ctx, client.NetworkListOptions{})
		if err != nil {
			return err
		}
		left := 0
		for _, n := range nets.Items {
			if n.Scope == "swarm" && (owned(n.Labels) || s.Networks[n.Name] != (sites.Network{})) {
				if _, err := c.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
					left++
				}
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d networks still in use after 2m", left)
		}
		time.Sleep(500 * time.Millisecond)
	}
	secs, err := c.SecretList(ctx, client.SecretListOptions{})
	if err != nil {
		return err
	}
	for _, x := range secs.Items {
		if owned(x.Spec.Labels) {
			c.SecretRemove(ctx, x.ID, client.SecretRemoveOptions{})
		}
	}
	cfgs, err := c.ConfigList(ctx, client.ConfigListOptions{})
	if err != nil {
		return err
	}
	for _, x := range cfgs.Items {
		if owned(x.Spec.Labels) {
			c.ConfigRemove(ctx, x.ID, client.ConfigRemoveOptions{})
		}
	}
	// Wait until no task of a removed service remains (containers stopped).
	for {
		tasks, err := c.TaskList(ctx, client.TaskListOptions{})
		if err != nil {
			return err
		}
		running := 0
		for _, t := range tasks.Items {
			if t.Status.State == swarm.TaskStateRunning {
				running++
			}
		}
		if running == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return removeVolumes(ctx, s)
}

// settle waits until the clean-up's work in the engines is over, so that it does not
// run into the next measured run: no task container left on any node, then the
// machine's CPU under 20 % busy over one second (at most 30 s; a machine busy with
// other work is not waited for longer). It returns how long it waited.
func settle(ctx context.Context, topo *sites.Topology) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for _, s := range topo.Sites {
		for i := range s.Nodes {
			c, err := engine.ForNode(ctx, s, &s.Nodes[i])
			if err != nil {
				return 0, err
			}
			for {
				res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "com.docker.swarm.task.id")})
				if err != nil || len(res.Items) == 0 || time.Now().After(deadline) {
					c.Close()
					if err != nil {
						return 0, fmt.Errorf("node %s: %w", s.Nodes[i].Name, err)
					}
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	cores := float64(onlineCPUs())
	for quiet := time.Now().Add(30 * time.Second); time.Now().Before(quiet); {
		b0 := busyCPU()
		time.Sleep(time.Second)
		if (busyCPU()-b0)/cores < 0.2 {
			break
		}
	}
	return time.Since(start), nil
}

// removeVolumes removes the stacks' volumes on every node, so each run starts from
// empty (PostgreSQL runs initdb again).
func removeVolumes(ctx context.Context, s *sites.Site) error {
	for i := range s.Nodes {
		c, err := engine.ForNode(ctx, s, &s.Nodes[i])
		if err != nil {
			return err
		}
		vols, err := c.VolumeList(ctx, client.VolumeListOptions{})
		if err == nil {
			for _, v := range vols.Items {
				if owned(v.Labels) {
					for try := 0; try < 20; try++ {
						if _, err = c.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err == nil {
							break
						}
						time.Sleep(500 * time.Millisecond) // the container is still being removed
					}
				}
			}
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", s.Nodes[i].Name, err)
		}
	}
	return nil
}

func owned(labels map[string]string) bool {
	return labels[stacks.LabelManaged] == "true" || labels["com.docker.stack.namespace"] != ""
}

// stamped prefixes each line with the seconds since start (-v: where the time goes).
type stamped struct {
	w     io.Writer
	start time.Time
	bol   bool
}

func (s *stamped) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if s.bol {
			out = fmt.Appendf(out, "%6.2fs ", time.Since(s.start).Seconds())
		}
		out = append(out, c)
		s.bol = c == '\n'
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
