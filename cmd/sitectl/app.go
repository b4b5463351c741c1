package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/sites"
)

// Streams are the process's standard streams; tests pass buffers.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// globals are the flags every command shares.
type globals struct {
	streams   Streams
	configDir string
	appsDir   string
	env       string
	set       []string
	output    string
	quiet     bool
	environ   []string
	// ctx is the command's context (cancelled on SIGINT/SIGTERM).
	ctx      context.Context
	envShown bool
}

// ExitError carries a process exit code: 1 error, 2 "changes pending" for plan.
// Silent ones have already said what they had to say.
type ExitError struct {
	Code   int
	Err    error
	Silent bool
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

func isSilent(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Silent
}

// commands lists the top-level commands; each lives in its own file.
var commands = []func(*globals) *cobra.Command{
	newVersionCommand,
	newConfigCommand,
	newLabCommand,
	newCICommand,
	newReplicationCommand,
	newPlanCommand,
	newDeployCommand,
	newStacksCommand,
	newStatusCommand,
	newMongoCommand,
	newTunnelsCommand,
	newDrillCommand,
	newSiteCommand,
	newAuditCommand,
	newInitCommand,
	newLoadCommand,
	newBackupCommand,
	newRestoreCommand,
}

// Run runs sitectl with args; only main calls os.Exit.
func Run(ctx context.Context, streams Streams, args []string) error {
	root := newRootCommand(streams, os.Environ())
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCommand(streams Streams, environ []string) *cobra.Command {
	g := &globals{streams: streams, environ: environ}
	root := &cobra.Command{
		Use:           "sitectl",
		Short:         "Deploy and operate one system across sites, each its own Docker Swarm",
		Long:          rootLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			g.ctx = cmd.Context()
			switch g.output {
			case "text", "json", "yaml":
			default:
				return fmt.Errorf("--output %q: allowed: text, json, yaml", g.output)
			}
			return nil
		},
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.SetIn(streams.In)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configDir, "config-dir", envOr(environ, "SITECTL_CONFIG_DIR", "sites"), "configuration directory (env SITECTL_CONFIG_DIR)")
	pf.StringVar(&g.appsDir, "apps-dir", envOr(environ, "SITECTL_APPS_DIR", ""), "apps directory, one folder per app (env SITECTL_APPS_DIR; default <config-dir>/../apps)")
	pf.StringVar(&g.env, "env", "", "environment overlay: dev, staging, production, lab (env SITECTL_ENV; default from <config-dir>/.sitectl-env, else dev)")
	pf.StringArrayVar(&g.set, "set", nil, "override a setting: key=value for every site, site:key=value for one (repeatable)")
	pf.StringVarP(&g.output, "output", "o", envOr(environ, "SITECTL_OUTPUT", "text"), "output format: text, json, yaml")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "no progress lines on stderr")
	for _, c := range commands {
		root.AddCommand(c(g))
	}
	markRequiredFlags(root)
	return root
}

func envOr(environ []string, key, def string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok && v != "" {
			return v
		}
	}
	return def
}

// chooseEnv is the environment in effect for this run and where it was chosen
// (--env, SITECTL_ENV, <config-dir>/.sitectl-env, default).
func (g *globals) chooseEnv() (sites.EnvChoice, error) {
	return sites.ChooseEnv(g.env, g.configDir, g.environ)
}

// loadTopology loads and validates the configuration of the environment in effect;
// warnings go to stderr. Its first progress line names the environment the command
// acts on and where that choice came from.
func (g *globals) loadTopology() (*sites.Topology, error) {
	choice, err := g.chooseEnv()
	if err != nil {
		return nil, err
	}
	topo, err := sites.Load(sites.Options{Context: g.ctx, Dir: g.configDir, Env: choice.Env, Environ: g.environ, Set: g.set, KnownStacks: g.knownStacks()})
	if err != nil {
		return nil, err
	}
	labreach.Install(topo)
	if err := g.withApps(topo); err != nil {
		return nil, err
	}
	if !g.envShown && !g.quiet {
		g.envShown = true
		fmt.Fprintf(g.streams.Err, "environment %s (from %s), config %s: %s\n", choice.Env, choice.Source, g.configDir, strings.Join(topo.SiteNames(), ", "))
	}
	for _, w := range topo.Warnings {
		fmt.Fprintln(g.streams.Err, w.String())
	}
	return topo, nil
}

// progress returns the stderr progress printer (nil, silent, under -q).
func (g *globals) progress() *progress.Printer {
	if g.quiet {
		return nil
	}
	return progress.New(g.streams.Err)
}

// printStructured writes v as JSON or YAML per --output; false when text is wanted.
// writeJSON writes v as indented JSON, the shape --output json prints.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (g *globals) printStructured(v any) (bool, error) {
	switch g.output {
	case "json":
		return true, writeJSON(g.streams.Out, v)
	case "yaml":
		// Round-trip through JSON so the json tags (and MarshalText) decide the shape.
		b, err := json.Marshal(v)
		if err != nil {
			return true, err
		}
		var generic any
		if err := yaml.Unmarshal(b, &generic); err != nil {
			return true, err
		}
		enc := yaml.NewEncoder(g.streams.Out)
		enc.SetIndent(2)
		if err := enc.Encode(generic); err != nil {
			_ = enc.Close() // the encode error is the one to report
			return true, err
		}
		return true, enc.Close()
	}
	return false, nil
}
