package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/ci"
	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

type deployOptions struct {
	sites       siteFlags
	prune       bool
	forceUnlock bool
	plan        string
	app         string
}

func newDeployCommand(g *globals) *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "deploy",
		Short: "Apply the plan to sites (in parallel) and wait until every service converged",
		Long: `Applies the steps plan shows, site by site in parallel: swarm membership, networks,
secrets and configs (versioned by content: a changed value rolls the services using it),
services (only those whose spec changed), then the other parts. Waits until every
service runs its desired tasks, within the site's deploy.timeout; a service that rolled
back, paused, keeps failing or does not converge fails the deploy, named with the
reason. One deploy per site at a time: the lock lives in the site's swarm.

--plan FILE (saved by plan --out) deploys that plan's sites only if planning them
again gives the same changes; otherwise it changes nothing and lists what differs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDeploy(cmd, g, o) },
	}
	o.sites.add(cmd, "deploy", true)
	cmd.Flags().BoolVar(&o.prune, "prune", false, "remove services, networks, secrets and configs sitectl created that the config no longer wants")
	cmd.Flags().BoolVar(&o.forceUnlock, "force-unlock", false, "take the site's deploy lock even if another deploy holds it")
	cmd.Flags().StringVar(&o.plan, "plan", "", "deploy only if the plan saved in this file (plan --out) still holds")
	cmd.Flags().StringVar(&o.app, "app", "", "deploy only this app (a folder of the apps dir), at the selected sites that run it")
	return cmd
}

func runDeploy(cmd *cobra.Command, g *globals, o deployOptions) error {
	topo, err := g.loadTopology()
	if err != nil {
		return err
	}
	var saved *plan.Plan
	if o.plan != "" {
		if saved, err = loadSaved(topo, o); err != nil {
			return err
		}
		if len(o.sites.names) == 0 && !o.sites.all {
			for _, sp := range saved.Sites {
				o.sites.names = append(o.sites.names, sp.Site)
			}
		}
	}
	selected, err := o.sites.selectSites(topo)
	if err != nil {
		return err
	}
	if err := g.drillLeftovers(cmd.Context(), topo, selected, true, "deploy"); err != nil {
		return err
	}
	if o.app != "" {
		return runDeployApp(cmd, g, o, topo, selected)
	}
	if saved != nil {
		if err := checkSaved(cmd, g, topo, selected, saved, o); err != nil {
			return err
		}
	}
	// Sites deploy in parallel: a site's replication plan waits for the databases of
	// the other sites, which may still be starting in this same deploy.
	starting := []string{}
	for _, s := range selected {
		starting = append(starting, s.Name)
	}
	opts := deploy.Options{Prune: o.prune, ForceUnlock: o.forceUnlock, Environ: g.environ, Progress: g.progress(),
		Replication: postgres.Options{PeerWait: 2 * time.Minute, Starting: starting}}
	results := deploy.Deploy(cmd.Context(), topo, selected, deploy.Parts(opts), opts)
	return g.reportDeploy(results)
}

// runDeployApp deploys one app at the selected sites that run it: only its
// services, networks, secrets and configs are planned, changed or pruned.
func runDeployApp(cmd *cobra.Command, g *globals, o deployOptions, topo *sites.Topology, selected []*sites.Site) error {
	if o.plan != "" {
		return errors.New("--app and --plan exclude each other: a saved plan covers every stack of its sites")
	}
	a, at, err := g.appSites(topo, selected, o.app)
	if err != nil {
		return err
	}
	opts := deploy.Options{Prune: o.prune, ForceUnlock: o.forceUnlock, Environ: g.environ, Progress: g.progress(), Stacks: []string{a.Name}}
	results := deploy.Deploy(cmd.Context(), topo, at, deploy.Parts(opts), opts)
	return g.reportDeploy(results)
}

// reportDeploy prints what deploy did per site; any failed site fails the command.
func (g *globals) reportDeploy(results []deploy.SiteResult) error {
	var failed []error
	for _, r := range results {
		if r.Err() != nil {
			failed = append(failed, r.Err())
		}
	}
	ok, err := g.printStructured(results)
	if err != nil {
		return err
	}
	if !ok {
		for _, r := range results {
			if r.Err() != nil {
				fmt.Fprintf(g.streams.Out, "✗ %s: %s\n", r.Site, r.Error)
				continue
			}
			what := "nothing to do"
			if n := len(r.Applied); n > 0 {
				what = fmt.Sprintf("%d change(s) applied", n)
			}
			fmt.Fprintf(g.streams.Out, "✓ %s: %s, converged (%s)\n", r.Site, what, r.Duration.Round(10*time.Millisecond))
		}
	}
	if len(failed) > 0 {
		names := make([]string, 0, len(failed))
		for _, r := range results {
			if r.Err() != nil {
				names = append(names, r.Site)
			}
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("deploy failed on %s: %w", strings.Join(names, ", "), errors.Join(failed...)), Silent: !ok}
	}
	return nil
}

// loadSaved reads deploy --plan's file and refuses, before any engine is reached, a
// plan for another environment and --force-unlock (the saved plan is checked before
// the deploy takes each site's lock: a lock held by another deploy must stop this
// one, not be taken over).
func loadSaved(topo *sites.Topology, o deployOptions) (*plan.Plan, error) {
	if o.forceUnlock {
		return nil, errors.New("--plan and --force-unlock exclude each other: a saved plan is only checked before the lock, so a held lock must stop the deploy; deploy without --plan to take the lock over")
	}
	saved, err := loadPlan(o.plan)
	if err != nil {
		return nil, err
	}
	if saved.Env != topo.Env {
		return nil, fmt.Errorf("the plan saved in %s is for environment %s, not %s: pass --env %s", o.plan, saved.Env, topo.Env, saved.Env)
	}
	return saved, nil
}

// checkSaved plans the selected sites again the way `sitectl plan` plans (before the
// deploy's own replication options are set) and refuses, changing nothing, when the
// changes differ from the saved plan the operator reviewed.
func checkSaved(cmd *cobra.Command, g *globals, topo *sites.Topology, selected []*sites.Site, saved *plan.Plan, o deployOptions) error {
	opts := deploy.Options{Prune: o.prune, Environ: g.environ}
	now := deploy.Plan(cmd.Context(), topo, selected, deploy.Parts(opts), opts)
	now.Prune = o.prune
	diff := plan.Stale(saved, now)
	if len(diff) == 0 {
		return nil
	}
	again := []string{"sitectl plan", "--env", topo.Env}
	for _, s := range selected {
		again = append(again, "--site", s.Name)
	}
	if o.prune {
		again = append(again, "--prune")
	}
	again = append(again, "--out", o.plan)
	fix := fmt.Sprintf("plan again (%s), review it, and deploy that", strings.Join(again, " "))
	if envOr(g.environ, "GITLAB_CI", "") == "true" {
		var jobs []string
		for _, s := range selected {
			jobs = append(jobs, ci.JobName("plan", topo.Env, s.Name))
		}
		fix = fmt.Sprintf("in GitLab: retry the job %s, review its plan, then run this deploy job again", strings.Join(jobs, ", "))
	}
	return fmt.Errorf("the plan saved in %s no longer holds, so nothing was changed:\n  %s\n%s", o.plan, strings.Join(diff, "\n  "), fix)
}
