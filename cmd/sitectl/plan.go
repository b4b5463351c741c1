package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	_ "github.com/sitectl/sitectl/stacks/all" // every stack, registered
)

// siteFlags select sites: --site S (repeatable) or --all.
type siteFlags struct {
	names []string
	all   bool
}

func (f *siteFlags) add(cmd *cobra.Command, verb string) {
	cmd.Flags().StringSliceVar(&f.names, "site", nil, "site(s) to "+verb+" (repeatable, or comma-separated)")
	cmd.Flags().BoolVar(&f.all, "all", false, "every site")
}

// selectSites returns the chosen sites; required says whether naming none is an
// error (deploy) or means every site (plan, status).
func (f *siteFlags) selectSites(topo *sites.Topology, required bool) ([]*sites.Site, error) {
	switch {
	case f.all && len(f.names) > 0:
		return nil, errors.New("--site and --all exclude each other")
	case f.all:
		return topo.Sites, nil
	case len(f.names) == 0 && required:
		return nil, fmt.Errorf("name the sites: --site S (sites: %s) or --all", strings.Join(topo.SiteNames(), ", "))
	}
	return topo.Select(f.names...)
}

type planOptions struct {
	sites siteFlags
	prune bool
	out   string
}

func newPlanCommand(g *globals) *cobra.Command {
	var o planOptions
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what deploy would change on each site, changing nothing",
		Long: `Reads each site's live state (in parallel) and prints the typed steps deploy would
apply: swarm membership and node labels, networks, secrets, configs, services (with a
readable diff), then the other parts (tunnels, replication). Secret values are never
shown. Exit code: 0 nothing to do, 2 changes pending, 1 error.

--out FILE also saves the plan (JSON, as --output json prints it); deploy --plan FILE
applies it only while it still holds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd, g, o) },
	}
	o.sites.add(cmd, "plan (default: all)")
	cmd.Flags().BoolVar(&o.prune, "prune", false, "also plan removing sitectl's objects the config no longer wants")
	cmd.Flags().StringVar(&o.out, "out", "", "also save the plan to this file, for deploy --plan")
	return cmd
}

func runPlan(cmd *cobra.Command, g *globals, o planOptions) error {
	topo, err := g.loadTopology()
	if err != nil {
		return err
	}
	selected, err := o.sites.selectSites(topo, false)
	if err != nil {
		return err
	}
	_ = g.drillLeftovers(cmd.Context(), topo, selected, false, "plan")
	p := deploy.Plan(cmd.Context(), topo, selected, deploy.Parts, deploy.Options{Prune: o.prune, Environ: g.environ})
	p.Prune = o.prune
	if o.out != "" {
		if err := savePlan(o.out, p); err != nil {
			return err
		}
	}
	ok, err := g.printStructured(p)
	if !ok {
		err = p.Render(g.streams.Out)
	}
	if err != nil {
		return err
	}
	if f := p.Failed(); len(f) > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("could not plan %s (see above); nothing was changed", strings.Join(f, ", ")), Silent: ok}
	}
	if p.Changes() > 0 {
		return &ExitError{Code: 2, Silent: true}
	}
	return nil
}

// savePlan writes the plan as JSON (the shape --output json prints).
func savePlan(path string, p *plan.Plan) error {
	var b bytes.Buffer
	if err := writeJSON(&b, p); err != nil {
		return err
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("save the plan: %w", err)
	}
	return nil
}

// loadPlan reads a plan saved by plan --out (or printed by plan --output json).
func loadPlan(path string) (*plan.Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the saved plan: %w (save one with sitectl plan --out; in a pipeline, retry the site's plan job)", err)
	}
	var p plan.Plan
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || p.Env == "" || len(p.Sites) == 0 {
		if err == nil {
			err = errors.New("no environment or no sites in it")
		}
		return nil, fmt.Errorf("%s is not a plan saved by `sitectl plan --out` (%v)", path, err)
	}
	return &p, nil
}
