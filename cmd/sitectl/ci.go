package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/ci"
	"github.com/sitectl/sitectl/sites"
)

func newCICommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci",
		Short: "GitLab CI: generate the pipeline of an environment, list and check its variables, lint .gitlab-ci.yml",
	}
	cmd.AddCommand(newCIGenerateCommand(g), newCIVariablesCommand(g), newCICheckCommand(g), newCILintCommand(g))
	return cmd
}

type ciGenerateOptions struct {
	out     string
	check   string
	version string
	opts    ci.Options
}

func newCIGenerateCommand(g *globals) *cobra.Command {
	o := &ciGenerateOptions{}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write the GitLab CI pipeline of one environment (validate, plan, deploy, verify, drill)",
		Long: `Writes the GitLab CI pipeline that deploys every site of one environment, from
the site configuration: validate -> plan (per site, exit code 2 allowed, plan saved as
an artifact) -> deploy (per site, in parallel, GitLab environment <env>/<site>, one
resource group per site) -> verify (status per site, replication across sites), and
partition drills in scheduled pipelines (not for production unless --production-drills).

dev deploys from the default branch, staging from tags and the staging branch,
production from protected tags only and by hand. The pipeline reads secrets and site
access (Docker endpoints, TLS files, SSH keys) from CI/CD variables; it names them and
never holds a value. See 'sitectl ci variables' for the list to set in GitLab.

The output is checked against GitLab's .gitlab-ci.yml schema before it is written.`,
		Example: `  sitectl ci generate --env production --out .gitlab-ci.yml
  sitectl ci generate --env dev --runner-tag 'site-{site}'`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error { return runCIGenerate(g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.out, "out", "", "write the pipeline to this file (default: stdout); the pipeline then also checks that this file stays up to date")
	f.StringVar(&o.check, "check", "", "write nothing: fail when this file (written with --out) differs from what the configuration generates")
	f.StringVar(&o.opts.Image, "image", ci.DefaultImage, "job image: needs Go (jobs build sitectl) and an ssh client")
	f.StringVar(&o.opts.StagingBranch, "staging-branch", ci.DefaultStagingBranch, "branch that deploys staging, besides tags")
	f.BoolVar(&o.opts.ProductionDrills, "production-drills", false, "also run scheduled drills against production")
	f.StringArrayVar(&o.opts.RunnerTags, "runner-tag", nil, "runner tag for jobs that reach sites; {site} is replaced by the site (repeatable)")
	f.StringVar(&o.version, "sitectl-version", "", "sitectl version the jobs install (go install); default: this binary's, outside sitectl's own repository (which builds from source)")
	return cmd
}

func runCIGenerate(g *globals, o *ciGenerateOptions) error {
	dir, err := repoPath("--config-dir", g.configDir)
	if err != nil {
		return err
	}
	o.opts.ConfigDir = dir
	if g.appsDir != "" {
		if o.opts.AppsDir, err = repoPath("--apps-dir", g.appsDir); err != nil {
			return err
		}
	}
	if err := pinVersion(&o.opts, ".", o.version); err != nil {
		return err
	}
	target := o.out
	if o.check != "" {
		target = o.check
	}
	if target != "" && target != "-" {
		if o.opts.Out, err = repoPath("--out", target); err != nil {
			return err
		}
	}
	topo, err := g.loadCITopology()
	if err != nil {
		return err
	}
	b, err := ci.Render(topo, o.opts)
	if err != nil {
		return err
	}
	switch {
	case o.check != "":
		old, err := os.ReadFile(o.check)
		if err != nil {
			return fmt.Errorf("ci generate --check: %w (generate it with: %s)", err, o.opts.Command(topo.Env))
		}
		if line := firstDifference(old, b); line > 0 {
			return fmt.Errorf("%s is out of date with the configuration of %s (first difference at line %d): regenerate it with: %s",
				o.check, topo.Env, line, o.opts.Command(topo.Env))
		}
		fmt.Fprintf(g.streams.Out, "✓ %s matches the configuration of %s\n", o.check, topo.Env)
		return nil
	case o.out == "" || o.out == "-":
		_, err = g.streams.Out.Write(b)
		return err
	}
	done := g.progress().Step("write %s: pipeline of %s for %s", o.out, topo.Env, strings.Join(topo.SiteNames(), ", "))
	if err := writeFileAtomic(o.out, b); err != nil {
		done(err)
		return fmt.Errorf("ci generate %s: %w", topo.Env, err)
	}
	done(nil)
	return nil
}

// firstDifference is the first line (1-based) where a and b differ, 0 when equal.
func firstDifference(a, b []byte) int {
	if bytes.Equal(a, b) {
		return 0
	}
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range max(len(al), len(bl)) {
		if i >= len(al) || i >= len(bl) || al[i] != bl[i] {
			return i + 1
		}
	}
	return 1
}

// loadCITopology checks that the environment exists (listing the known ones when it
// does not), then loads it.
func (g *globals) loadCITopology() (*sites.Topology, error) {
	choice, err := g.chooseEnv()
	if err != nil {
		return nil, err
	}
	if err := ci.CheckEnv(g.configDir, choice.Env); err != nil {
		return nil, err
	}
	return g.loadTopology()
}

// repoPath is a path as pipeline jobs see it: relative to the repository root, where
// generate is run.
func repoPath(flag, path string) (string, error) {
	if filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		rel, err := filepath.Rel(wd, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			return "", fmt.Errorf("%s %s is outside the current directory: run sitectl ci generate from the repository root with a relative %s", flag, path, flag)
		}
		path = rel
	}
	return filepath.ToSlash(filepath.Clean(path)), nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close() // the write error is the one to report; the file is removed
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close() // the chmod error is the one to report; the file is removed
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newCIVariablesCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "variables",
		Short: "List the CI/CD variables the pipeline of an environment reads (names, never values)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			topo, err := g.loadCITopology()
			if err != nil {
				return err
			}
			vars, err := ci.Variables(topo)
			if err != nil {
				return err
			}
			if ok, err := g.printStructured(vars); ok {
				return err
			}
			fmt.Fprintf(g.streams.Out, "CI/CD variables for %s (GitLab environment scope %q):\n", topo.Env, topo.Env+"/*")
			for _, v := range vars {
				fmt.Fprintf(g.streams.Out, "  %-26s %-8s %-28s %s\n", v.Name, varType(v), varFlags(v), v.Purpose)
			}
			return nil
		},
	}
}

func varType(v ci.Variable) string {
	if v.File {
		return "file"
	}
	return "variable"
}

func varFlags(v ci.Variable) string {
	switch {
	case v.Secret && v.File:
		return "protected"
	case v.Secret:
		return "masked, protected"
	case v.Optional():
		return "optional (config: " + v.Default + ")"
	}
	return "required"
}

func newCICheckCommand(g *globals) *cobra.Command {
	var siteNames []string
	cmd := &cobra.Command{
		Use:   "check --site S [--site S2]",
		Short: "In a CI job: check that every CI/CD variable the sites need is set (values are never printed)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			topo, err := g.loadCITopology()
			if err != nil {
				return err
			}
			if len(siteNames) == 0 {
				return errors.New("ci check: name the sites the job reaches with --site")
			}
			vars, err := ci.Needed(topo, siteNames)
			if err != nil {
				return err
			}
			results := ci.Check(vars, g.environ)
			checkErr := ci.CheckError(topo.Env, results)
			if ok, err := g.printStructured(results); ok {
				if err == nil && checkErr != nil {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			for _, r := range results {
				mark := "✓"
				if !r.OK {
					mark = "✗"
				}
				note := varType(r.Variable)
				if r.Defaulted {
					note += ", optional, not set: the configuration's " + r.Default
				}
				fmt.Fprintf(g.streams.Out, "%s %s (%s)\n", mark, r.Name, note)
			}
			return checkErr
		},
	}
	cmd.Flags().StringSliceVar(&siteNames, "site", nil, "sites the job reaches (repeatable)")
	markRequired(cmd, "site", "")
	return cmd
}

type lintResult struct {
	File  string `json:"file"`
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
}

func newCILintCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "lint [FILE...]",
		Short: "Check .gitlab-ci.yml files against GitLab's schema, declared stages and needs",
		Args:  cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{".gitlab-ci.yml"}
			}
			var results []lintResult
			var errs []error
			for _, f := range args {
				b, err := os.ReadFile(f)
				if err == nil {
					err = ci.Lint(f, b)
				}
				r := lintResult{File: f, Valid: err == nil}
				if err != nil {
					r.Error = err.Error()
					errs = append(errs, err)
				}
				results = append(results, r)
			}
			if ok, err := g.printStructured(results); ok {
				if err == nil && len(errs) > 0 {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			for _, r := range results {
				if r.Valid {
					fmt.Fprintf(g.streams.Out, "✓ %s\n", r.File)
				}
			}
			return errors.Join(errs...)
		},
	}
}
