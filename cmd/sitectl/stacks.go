package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

func newStacksCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stacks",
		Short: "Work with the sites' stacks as files (render)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newStacksRenderCommand(g))
	return cmd
}

type stacksRenderOptions struct {
	sites siteFlags
	dir   string
}

// renderedFile is one file of `stacks render -o json`.
type renderedFile struct {
	Site    string `json:"site"`
	Path    string `json:"path"`
	Mode    string `json:"mode"`
	Content string `json:"content"`
}

func newStacksRenderCommand(g *globals) *cobra.Command {
	var o stacksRenderOptions
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Write every compose file and generated config exactly as deploy loads them",
		Long: `Renders the stacks of each selected site as deploy loads them: per site, one folder
per stack with its compose.yaml and the files its configs name, plus networks.sh (the
site networks, which the stacks use as external), secrets.sh (fills <stack>/secrets/
from the site's secret references) and a README. Secrets appear as references only,
never values. Reaches no site.

Without --dir the files are printed, each after a "==> site/path <==" line (-o json:
a list of {site, path, mode, content}). With --dir D each site's tree is written to
D/<site>, replacing a tree an earlier render wrote there; read and diff them, or deploy
them with plain docker: see D/<site>/README.`,
		Example: `  sitectl stacks render --site SITE --env staging --dir rendered
  diff -r rendered-before/SITE rendered/SITE`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, selected, err := g.loadSelected(&o.sites)
			if err != nil {
				return err
			}
			env := sites.EnvMap(g.environ)
			// Every site is rendered before anything is written or printed.
			trees := make([][]stacks.File, len(selected))
			for i, s := range selected {
				if trees[i], err = stacks.Tree(cmd.Context(), stacks.Input{Topo: topo, Site: s}, env); err != nil {
					return err
				}
			}
			if o.dir != "" {
				for i, s := range selected {
					dst, err := stacks.WriteTree(o.dir, s.Name, trees[i])
					if err != nil {
						return fmt.Errorf("stacks render %s: %w", s.Name, err)
					}
					fmt.Fprintf(g.streams.Out, "%s: %d files in %s\n", s.Name, len(trees[i]), dst)
				}
				return nil
			}
			var list []renderedFile
			for i, s := range selected {
				for _, f := range trees[i] {
					list = append(list, renderedFile{Site: s.Name, Path: f.Path, Mode: fmt.Sprintf("%04o", f.Mode), Content: string(f.Data)})
				}
			}
			if ok, err := g.printStructured(list); ok {
				return err
			}
			var b strings.Builder
			for _, f := range list {
				fmt.Fprintf(&b, "==> %s/%s <==\n%s", f.Site, f.Path, f.Content)
				if !strings.HasSuffix(f.Content, "\n") {
					b.WriteString("\n")
				}
			}
			_, err = fmt.Fprint(g.streams.Out, b.String())
			return err
		},
	}
	o.sites.add(cmd, "render", false)
	cmd.Flags().StringVar(&o.dir, "dir", "", "write each site's tree to DIR/<site> instead of printing it")
	return cmd
}
