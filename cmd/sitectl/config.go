package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/sites"
)

func newConfigCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Validate and show the per-site configuration",
	}
	cmd.AddCommand(newConfigValidateCommand(g), newConfigShowCommand(g))
	return cmd
}

type validateResult struct {
	Environment string         `json:"environment"`
	Sites       []string       `json:"sites"`
	Valid       bool           `json:"valid"`
	Problems    sites.Problems `json:"problems"`
}

func newConfigValidateCommand(g *globals) *cobra.Command {
	var siteNames []string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration of every environment (or --env) before anything touches a site",
		Long: `Loads every layer (defaults < site < environment < SITECTL_* < --set), validates
each environment and prints every problem found, not just the first. Without --env,
every environment overlay in <config-dir>/env is checked. Exit code 1 on any error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConfigValidate(cmd.Context(), g, siteNames)
		},
	}
	cmd.Flags().StringSliceVar(&siteNames, "site", nil, "also check that these sites exist")
	return cmd
}

func runConfigValidate(ctx context.Context, g *globals, siteNames []string) error {
	envs := sites.Environments(g.configDir)
	if g.env != "" {
		envs = []string{g.env}
	}
	if len(envs) == 0 {
		envs = []string{""}
	}
	var results []validateResult
	failed := false
	// The environment other commands would pick (SITECTL_ENV, .sitectl-env)
	// is checked too: a refused choice is an error here, not later.
	if g.env == "" {
		var ee *sites.EnvError
		if _, err := g.chooseEnv(); errors.As(err, &ee) {
			results = append(results, validateResult{Environment: "(chosen by " + ee.Source + ")", Problems: sites.Problems{ee.Problem()}})
			failed = true
		}
	}
	for _, env := range envs {
		r, err := validateEnv(ctx, g, env, siteNames)
		if err != nil {
			return err
		}
		failed = failed || !r.Valid
		results = append(results, r)
	}
	if ok, err := g.printStructured(results); ok {
		if err == nil && failed {
			err = &ExitError{Code: 1, Silent: true}
		}
		return err
	}
	printValidateResults(g, results)
	if failed {
		return &ExitError{Code: 1, Err: errors.New("configuration is not valid; fix the problems above (nothing was changed)")}
	}
	return nil
}

// validateEnv loads and checks one environment; an error is one that stops the
// command (not a problem of the configuration).
func validateEnv(ctx context.Context, g *globals, env string, siteNames []string) (validateResult, error) {
	r := validateResult{Environment: env, Valid: true}
	topo, err := sites.Load(sites.Options{Context: ctx, Dir: g.configDir, Env: env, Environ: g.environ, Set: g.set, KnownStacks: g.knownStacks()})
	if err == nil {
		err = g.withApps(topo)
	}
	var ps sites.Problems
	switch {
	case errors.As(err, &ps):
		r.Valid, r.Problems = false, ps
	case err != nil:
		return r, err
	default:
		r.Problems = topo.Warnings
		if sp := stackProblems(topo); len(sp) > 0 {
			r.Valid = false
			r.Problems = append(sp, r.Problems...)
		}
		r.Sites = topo.SiteNames()
		if len(siteNames) > 0 {
			if _, err := topo.Select(siteNames...); err != nil {
				return r, err
			}
			r.Sites = siteNames
		}
	}
	return r, nil
}

// printValidateResults prints each environment's verdict and problems; a problem
// every environment has (a --set flag, a shared file) is printed once, before the
// environments.
func printValidateResults(g *globals, results []validateResult) {
	shared := sharedProblems(results)
	if len(shared) > 0 {
		fmt.Fprintf(g.streams.Out, "in every environment:\n")
		for _, p := range shared {
			fmt.Fprintf(g.streams.Out, "  %s\n", p)
		}
	}
	for _, r := range results {
		env := r.Environment
		if env == "" {
			env = "(no overlay)"
		}
		if r.Valid {
			fmt.Fprintf(g.streams.Out, "✓ %s: %s valid\n", env, strings.Join(r.Sites, ", "))
		} else {
			fmt.Fprintf(g.streams.Out, "✗ %s: %d error(s)\n", env, len(r.Problems.Errors()))
		}
		for _, p := range r.Problems {
			if !slices.Contains(shared, p.String()) {
				fmt.Fprintf(g.streams.Out, "  %s\n", p)
			}
		}
	}
}

func newConfigShowCommand(g *globals) *cobra.Command {
	var siteNames []string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the merged, final configuration of sites (secrets as references only)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if g.output == "text" {
				g.output = "yaml"
			}
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			selected, err := topo.Select(siteNames...)
			if err != nil {
				return err
			}
			if len(siteNames) == 1 {
				_, err = g.printStructured(selected[0])
				return err
			}
			_, err = g.printStructured(selected)
			return err
		},
	}
	cmd.Flags().StringSliceVar(&siteNames, "site", nil, "sites to show (default: all)")
	return cmd
}

// sharedProblems lists the problems that every one of two or more environments'
// results has, in the first result's order.
func sharedProblems(results []validateResult) []string {
	if len(results) < 2 {
		return nil
	}
	var out []string
	for _, p := range results[0].Problems {
		line, everywhere := p.String(), true
		for _, r := range results[1:] {
			if !slices.ContainsFunc(r.Problems, func(q sites.Problem) bool { return q.String() == line }) {
				everywhere = false
				break
			}
		}
		if everywhere && !slices.Contains(out, line) {
			out = append(out, line)
		}
	}
	return out
}
