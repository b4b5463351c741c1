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
	"os"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	_ "github.com/sitectl/sitectl/stacks/all"
	sitectlswarm "github.com/sitectl/sitectl/swarm"
)

// config holds the command's flags.
type config struct {
	dir, env, only string
	set            multi
	timeout        time.Duration
	verbose        bool
	poll           time.Duration
	allParts       bool
	side           string // -only: docker, sitectl, or "" for both
	runs           int
	alone          bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.dir, "config-dir", "sites", "sites config directory (with the lab overlay)")
	flag.StringVar(&cfg.env, "env", "lab", "environment")
	flag.StringVar(&cfg.only, "stacks", "", "comma-separated stacks to deploy (default: each site's)")
	flag.Var(&cfg.set, "set", "config override key=value or site:key=value (repeatable)")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "convergence timeout per run")
	flag.BoolVar(&cfg.verbose, "v", false, "sitectl's progress lines on stderr")
	flag.DurationVar(&cfg.poll, "poll", 0, "sitectl's convergence poll interval (default: sitectl deploy's, 500ms)")
	flag.BoolVar(&cfg.allParts, "all-parts", false, "run every part of deploy.Parts (tunnels, replication...), not only what docker stack deploy does (swarm + stacks)")
	flag.StringVar(&cfg.side, "only", "", "run only one side: docker or sitectl (no ratio)")
	flag.IntVar(&cfg.runs, "runs", 1, "measure this many times, then print each ratio, the median and how many met the goal")
	flag.BoolVar(&cfg.alone, "alone", false, "also deploy each site alone with sitectl (the others empty) and print what one machine per site would give")
	flag.Parse()
	if cfg.runs < 1 {
		fmt.Fprintln(os.Stderr, "bench-deploy: -runs must be 1 or more")
		os.Exit(2)
	}
	if cfg.alone && cfg.side == "docker" {
		fmt.Fprintln(os.Stderr, "bench-deploy: -alone deploys with sitectl; it does not go with -only docker")
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench-deploy:", err)
		os.Exit(1)
	}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// bench is one invocation: the topology and an engine client per site.
type bench struct {
	config
	ctx     context.Context
	topo    *sites.Topology
	clients map[string]*client.Client
}

func run(cfg config) error {
	ctx := context.Background()
	topo, err := sites.Load(sites.Options{Dir: cfg.dir, Env: cfg.env, Set: cfg.set})
	if err != nil {
		return err
	}
	labreach.Install(topo)
	if cfg.only != "" {
		for _, s := range topo.Sites {
			s.Stacks = strings.Split(cfg.only, ",")
		}
	}
	b := &bench{config: cfg, ctx: ctx, topo: topo, clients: map[string]*client.Client{}}
	for _, s := range topo.Sites {
		c, err := engine.ForSite(ctx, s)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }() // the benchmark is over
		b.clients[s.Name] = c
	}
	var all []result
	for i := 1; i <= cfg.runs; i++ {
		if cfg.runs > 1 {
			fmt.Printf("--- run %d of %d\n", i, cfg.runs)
		}
		r, err := b.once()
		if err != nil {
			return err
		}
		all = append(all, r)
	}
	if cfg.runs > 1 {
		summarize(all, cfg.side)
	}
	return nil
}

// clean empties every site of both tools' objects and waits for the machine to
// settle.
func (b *bench) clean() error {
	for _, s := range b.topo.Sites {
		if err := empty(b.ctx, b.clients[s.Name], s); err != nil {
			return fmt.Errorf("empty %s: %w", s.Name, err)
		}
	}
	quiet, err := settle(b.ctx, b.topo)
	if err != nil {
		return err
	}
	if b.verbose {
		fmt.Fprintf(os.Stderr, "machine quiet after the clean-up (%s)\n", quiet.Round(100*time.Millisecond))
	}
	return nil
}

// once is one measured run: docker stack deploy, then sitectl deploy from empty and
// again, then (-alone) each site alone.
func (b *bench) once() (res result, err error) {
	if err := b.clean(); err != nil {
		return res, err
	}
	start, cpu0 := time.Now(), busyCPU()
	var perSite []time.Duration
	if b.side == "" || b.side == "docker" {
		if perSite, err = dockerStackDeploy(b.ctx, b.topo, b.clients, b.timeout); err != nil {
			return res, fmt.Errorf("docker stack deploy: %w", err)
		}
	}
	docker, dockerCPU := time.Since(start), busyCPU()-cpu0
	res.docker = docker
	if b.side != "sitectl" {
		fmt.Printf("docker stack deploy, site after site, until converged: %s (%s)\n", docker.Round(10*time.Millisecond), bySite(b.topo, perSite))
	}
	if b.side == "docker" {
		return res, nil
	}
	opts, err := b.sitectl(&res, dockerCPU)
	if err != nil {
		return res, err
	}
	if !b.alone {
		return res, nil
	}
	return res, b.eachAlone(&res, opts)
}

// swarmAndStacks are the parts that do what docker stack deploy does.
var swarmAndStacks = []plan.Part{sitectlswarm.Part{}, deploy.Stacks}

// sitectl measures sitectl deploy --all from empty, then again (a no-op), and
// prints the figures and ratios against res.docker. It returns the deploy options
// it used.
func (b *bench) sitectl(res *result, dockerCPU float64) (deploy.Options, error) {
	if err := b.clean(); err != nil {
		return deploy.Options{}, err
	}
	parts := swarmAndStacks
	if b.allParts {
		parts = deploy.Parts(deploy.Options{})
	}
	opts := deploy.Options{Poll: b.poll}
	if b.verbose {
		opts.Progress = progress.New(&stamped{w: os.Stderr, start: time.Now(), bol: true})
	}
	start, cpu0 := time.Now(), busyCPU()
	if b.verbose {
		fmt.Fprintf(os.Stderr, "sitectl deploy --all starts at %s\n", start.UTC().Format("15:04:05.000"))
	}
	for _, r := range deploy.Deploy(b.ctx, b.topo, b.topo.Sites, parts, opts) {
		if r.Err() != nil {
			return opts, r.Err()
		}
	}
	first, firstCPU := time.Since(start), busyCPU()-cpu0
	start = time.Now()
	noop := 0
	for _, r := range deploy.Deploy(b.ctx, b.topo, b.topo.Sites, parts, opts) {
		if r.Err() != nil {
			return opts, r.Err()
		}
		noop += len(r.Applied)
	}
	again := time.Since(start)
	res.first, res.again = first, again
	what := "swarm + stacks parts"
	if b.allParts {
		what = "every part"
	}
	docker := res.docker
	fmt.Printf("sitectl deploy --all from empty (%s): %s\n", what, first.Round(10*time.Millisecond))
	fmt.Printf("sitectl deploy --all again (no-op, %d steps applied):   %s\n", noop, again.Round(time.Millisecond))
	if b.side == "" {
		fmt.Printf("ratio sitectl/docker: %.2f (goal ≤ 0.50)\n", first.Seconds()/docker.Seconds())
	}
	fmt.Printf("no-op/first deploy:   %.1f%% (goal ≤ 5%%)\n", 100*again.Seconds()/first.Seconds())
	// The machine's busy CPU time (every process: dockerd and its re-execs, runc,
	// iptables, the containers) shows how close a run came to being CPU-bound: a run
	// that keeps every core busy cannot end before busy/cores.
	n := onlineCPUs()
	cores := float64(n)
	if b.side != "sitectl" {
		fmt.Printf("CPU busy, docker run:  %.1f CPU-s on %d cores (%.0f%% of its wall time)\n", dockerCPU, n, 100*dockerCPU/cores/docker.Seconds())
	}
	fmt.Printf("CPU busy, sitectl run: %.1f CPU-s on %d cores (%.0f%% of its wall time; no run shorter than %.1fs here)\n", firstCPU, n, 100*firstCPU/cores/first.Seconds(), firstCPU/cores)
	return opts, nil
}

// eachAlone deploys each site alone. Here the sites share this machine's cores; in
// the field each site is its own machines. Each site deployed alone (the others
// empty and idle) shows what --all would take then: the slowest site. A
// projection, not the goal's figure. Swarm and stacks only, as docker stack deploy:
// with -all-parts a site alone would wait for its peers' databases, which are
// empty here.
func (b *bench) eachAlone(res *result, opts deploy.Options) error {
	var each []time.Duration
	for _, s := range b.topo.Sites {
		if err := b.clean(); err != nil {
			return err
		}
		t0 := time.Now()
		var err error
		for _, r := range deploy.Deploy(b.ctx, b.topo, []*sites.Site{s}, swarmAndStacks, opts) {
			err = r.Err()
		}
		if err != nil {
			return err
		}
		each = append(each, time.Since(t0))
	}
	res.alone = slices.Max(each)
	fmt.Printf("sitectl deploy, one site at a time, the others empty: %s\n", bySite(b.topo, each))
	if b.side == "" {
		fmt.Printf("projected ratio with one machine per site (slowest site alone / docker): %.2f\n", slices.Max(each).Seconds()/res.docker.Seconds())
	}
	return nil
}
