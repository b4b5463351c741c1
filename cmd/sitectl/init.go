package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/ci"
	"github.com/sitectl/sitectl/internal/scaffold"
)

func newInitCommand(g *globals) *cobra.Command {
	var siteFlags []string
	var pin string
	var defaults bool
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Scaffold a configuration repository of your own: sites, environments, an example app, pipelines",
		Long: `Writes a new configuration repository into DIR (new or empty): sites/ (one file per
site, defaults.yaml, env/dev|staging|production.yaml overlays, schema.sql), apps/web
(an example app: nginx serving a page at /), .gitlab-ci.yml including ci/<env>.yml,
the generated pipelines, which install this sitectl version (go install) instead of
building it from source. Sites come from --site NAME:ROLE:LAN (one hub, the others
spokes), or --defaults (a hub and two spokes); without either, on a terminal, init
asks (site names, which is the hub, each LAN, the environments), each question with
a default. Everything written validates: it is checked in a scratch folder first,
and nothing is written when it does not.`,
		Example: `  sitectl init ../ops-config             # asks
  sitectl init ../ops-config --defaults
  sitectl init ../ops-config --site hq:hub:10.30.0.0/24 --site plant:spoke:10.10.0.0/24
  cd ../ops-config && sitectl config validate`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var list []scaffold.Site
			for _, f := range siteFlags {
				s, err := scaffold.ParseSite(f)
				if err != nil {
					return fmt.Errorf("--site %w", err)
				}
				list = append(list, s)
			}
			if defaults && len(list) > 0 {
				return fmt.Errorf("--defaults and --site: give one (--defaults is a hub and two spokes)")
			}
			version := pin
			if version == "" {
				version = buildVersion()
			}
			if version == "" {
				return fmt.Errorf("the new repository's pipelines install sitectl pinned, but this sitectl is a development build: pass --sitectl-version vX.Y.Z (the release the jobs should run)")
			}
			if err := ci.CheckVersion(version); err != nil {
				return fmt.Errorf("the pipelines' sitectl version: %w", err)
			}
			if err := scaffold.Empty(args[0]); err != nil {
				return fmt.Errorf("init %s: %w", args[0], err)
			}
			var envs []string
			if len(list) == 0 && !defaults {
				if !isTerminal(g.streams.In) {
					return errNoSites
				}
				var err error
				if list, envs, err = askSites(g.streams.In, g.streams.Err); err != nil {
					return err
				}
			}
			paths, err := scaffold.Write(args[0], scaffold.Options{Sites: list, Version: version, Source: "--site", Envs: envs})
			if err != nil {
				return fmt.Errorf("init %s: %w", args[0], err)
			}
			if ok, err := g.printStructured(paths); ok {
				return err
			}
			fmt.Fprintf(g.streams.Out, "✓ %s: %d files (%s)\n", args[0], len(paths), strings.Join(paths, ", "))
			fmt.Fprintf(g.streams.Out, "next: cd %s && sitectl config validate && sitectl plan --all --env dev\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&siteFlags, "site", nil, "a site as NAME:ROLE:LAN, role hub or spoke (repeatable; without it init asks on a terminal)")
	cmd.Flags().BoolVar(&defaults, "defaults", false, "lay out a hub and two spokes (hub, branch-a, branch-b) without asking")
	cmd.Flags().StringVar(&pin, "sitectl-version", "", "sitectl version the pipelines install (default: this binary's)")
	return cmd
}
