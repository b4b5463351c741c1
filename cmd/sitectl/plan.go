package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	_ "github.com/sitectl/sitectl/stacks/all" // every stack, registered
)

// siteFlags select sites the same way in every command that takes them (plan,
// deploy, status, stacks render): --site S, repeatable or comma-separated (spaces
// around names ignored, a site named twice counted once), or --all; naming no site
// means every site for the commands that only read, and is an error for deploy,
// which changes them.
type siteFlags struct {
	names    []string
	all      bool
	required bool
	flags    *pflag.FlagSet
}

// add adds --site and --all to cmd; verb says what is done to the sites.
func (f *siteFlags) add(cmd *cobra.Command, verb string, required bool) {
	f.required, f.flags = required, cmd.Flags()
	usage := "site(s) to " + verb + ", repeatable or comma-separated"
	if !required {
		usage += " (default: every site)"
	}
	cmd.Flags().StringSliceVar(&f.names, "site", nil, usage)
	cmd.Flags().BoolVar(&f.all, "all", false, "every site")
	if required {
		markRequired(cmd, "site", "--site or --all")
		markRequired(cmd, "all", "--site or --all")
	}
}

// loadSelected loads the configuration and picks the sites f names: the first
// steps of every command that acts on sites.
func (g *globals) loadSelected(f *siteFlags) (*sites.Topology, []*sites.Site, error) {
	topo, err := g.loadTopology()
	if err != nil {
		return nil, nil, err
	}
	selected, err := f.selectSites(topo)
	if err != nil {
		return nil, nil, err
	}
	return topo, selected, nil
}

// selectSites returns the chosen sites, in the topology's order.
func (f *siteFlags) selectSites(topo *sites.Topology) ([]*sites.Site, error) {
	var names []string
	given := f.names
	if len(given) == 0 && f.flags != nil && f.flags.Changed("site") {
		given = []string{""} // --site "" or --site=
	}
	for _, n := range given {
		n = strings.TrimSpace(n)
		if n == "" {
			return nil, fmt.Errorf("--site needs a site name (sites: %s)", strings.Join(topo.SiteNames(), ", "))
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	switch {
	case f.all && len(names) > 0:
		return nil, errors.New("--site and --all exclude each other")
	case f.all:
		return topo.Sites, nil
	case len(names) == 0 && f.required:
		return nil, fmt.Errorf("name the sites: --site S (sites: %s) or --all", strings.Join(topo.SiteNames(), ", "))
	}
	chosen, err := topo.Select(names...)
	if err != nil {
		return nil, err
	}
	// In the topology's order, whatever order the flags named them in.
	out := make([]*sites.Site, 0, len(chosen))
	for _, s := range topo.Sites {
		if slices.Contains(chosen, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

type planOptions struct {
	sites siteFlags
	prune bool
	out   string
	app   string
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
applies it only while it still holds. A plan that fails (exit 1) is never saved: FILE
keeps what it held (deploy --plan checks any plan again before applying it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd, g, o) },
	}
	o.sites.add(cmd, "plan", false)
	cmd.Flags().BoolVar(&o.prune, "prune", false, "also plan removing sitectl's objects the config no longer wants")
	cmd.Flags().StringVar(&o.out, "out", "", "also save the plan to this file, for deploy --plan")
	cmd.Flags().StringVar(&o.app, "app", "", "plan only this app (a folder of the apps dir), at the selected sites that run it")
	return cmd
}

func runPlan(cmd *cobra.Command, g *globals, o planOptions) error {
	topo, selected, err := g.loadSelected(&o.sites)
	if err != nil {
		return err
	}
	warn := g.drillWarnings(cmd.Context(), topo, selected)
	defer warn() // before the error an early return prints
	opts := deploy.Options{Prune: o.prune, Environ: g.environ}
	if o.app != "" {
		if o.out != "" {
			return errors.New("--app and --out exclude each other: deploy --plan checks a plan of every stack of its sites")
		}
		a, at, err := g.appSites(topo, selected, o.app)
		if err != nil {
			return err
		}
		selected, opts.Stacks = at, []string{a.Name}
	}
	p := deploy.Plan(cmd.Context(), topo, selected, deploy.Parts(opts), opts)
	warn()
	p.Prune = o.prune
	failed := p.Failed()
	if o.out != "" && len(failed) == 0 {
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
	if len(failed) > 0 {
		err := fmt.Errorf("could not plan %s (see above); nothing was changed", strings.Join(failed, ", "))
		if o.out != "" {
			// A failed plan is never saved, and an earlier one in the file is left as
			// it was: deploy --plan plans again and refuses it if it no longer holds.
			err = fmt.Errorf("%w; %s was not written", err, o.out)
		}
		// The message names the file: print it even when the plan went out as JSON.
		return &ExitError{Code: 1, Err: err, Silent: ok && o.out == ""}
	}
	if p.Changes() > 0 {
		return &ExitError{Code: 2, Silent: true}
	}
	return nil
}

// savePlan writes the plan as JSON (the shape --output json prints): to a temporary
// file next to path, renamed over it only once complete, so path holds either the
// whole plan or what it held before.
func savePlan(path string, p *plan.Plan) error {
	var b bytes.Buffer
	if err := writeJSON(&b, p); err != nil {
		return err
	}
	if err := writeFileAtomic(path, b.Bytes()); err != nil {
		return fmt.Errorf("save the plan to %s: %w (nothing was written)", path, err)
	}
	return nil
}

// loadPlan reads a plan saved by plan --out (or printed by plan --output json).
func loadPlan(path string) (*plan.Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the saved plan: %w (save one with sitectl plan --out; in a pipeline, retry the site's plan job)", err)
	}
	return parsePlan(path, b)
}

// parsePlan reads a plan saved by `plan --out` (path names it in errors).
func parsePlan(path string, b []byte) (*plan.Plan, error) {
	var p plan.Plan
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(&p)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON document")
	}
	if err != nil || p.Env == "" || len(p.Sites) == 0 {
		if err == nil {
			err = errors.New("no environment or no sites in it")
		}
		return nil, fmt.Errorf("%s is not a plan saved by `sitectl plan --out` (%v)", path, err)
	}
	return &p, nil
}
