package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// rootLong is the root help: what sitectl is, and the path a newcomer follows.
// It names no site and no number of sites: those come from --config-dir.
const rootLong = `sitectl deploys and operates one system across sites, each running its own Docker
Swarm: swarms, networks and stacks, strongSwan tunnels between the sites, PostgreSQL
logical replication and a MongoDB replica set, GitLab CI pipelines, and drills that
prove the data resyncs without conflicts. The sites are the files in --config-dir.

The path, first time through:
  1. sitectl lab up                     build the sites on this machine (root) and select
                                        the lab environment; skip it for real sites
  2. sitectl config validate            check the configuration; reaches no site
  3. sitectl plan --all                 what deploy would change; changes nothing
                                        (exit 0 nothing to do, 2 changes pending, 1 error)
  4. sitectl deploy --all               apply it, sites in parallel, until every service
                                        converged (or --site S for one site)
  5. sitectl status                     each site's nodes, services and networks
  6. sitectl drill partition --site S   cut a site off, write on both sides, heal, verify

Sites are chosen the same way in plan, deploy, status and stacks render: --site S
(repeatable or comma-separated) or --all; plan, status and stacks render default to
every site, deploy needs one of them.`

// requiredAnnotation marks a flag a command's RunE requires (when cobra's own
// MarkFlagRequired would not do: "one of --site or --all"); its value is the note.
const requiredAnnotation = "sitectl_required"

// markRequired notes that flag of cmd is required; note says how ("" for plainly).
func markRequired(cmd *cobra.Command, flag, note string) {
	_ = cmd.Flags().SetAnnotation(flag, requiredAnnotation, []string{note})
}

// markRequiredFlags appends "(required)" to the help of every flag, in every
// command under root, that is required: by cobra's MarkFlagRequired or markRequired.
func markRequiredFlags(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			note, ours := f.Annotations[requiredAnnotation]
			_, cobras := f.Annotations[cobra.BashCompOneRequiredFlag]
			if (!ours && !cobras) || strings.Contains(f.Usage, "(required") {
				return
			}
			if ours && note[0] != "" {
				f.Usage += " (required: " + note[0] + ")"
			} else {
				f.Usage += " (required)"
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
