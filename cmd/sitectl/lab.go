package main

import (
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab"
)

type labOptions struct {
	prefix   string
	stateDir string
	sites    []string
	noImages bool
}

func (o *labOptions) options(g *globals) lab.Options {
	return lab.Options{ConfigDir: g.configDir, Prefix: o.prefix, StateDir: o.stateDir, Sites: o.sites,
		NoImages: o.noImages, Progress: g.progress()}
}

func newLabCommand(g *globals) *cobra.Command {
	o := &labOptions{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Build every site on this machine (namespaces, dockerd per node, strongSwan) to rehearse for real",
		Long: `The lab builds the sites of the config on one Linux machine (root): a WAN bridge in
its own network namespace; per site a gateway namespace running strongSwan (userspace
IPsec) and node namespaces each running their own dockerd, joined into the site's
swarm. It writes the "lab" environment overlay (<config-dir>/env/lab.yaml) so every
other command then works against it.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.prefix, "prefix", envOr(g.environ, "SITECTL_LAB_PREFIX", lab.DefaultPrefix), "name prefix of the lab's namespaces (env SITECTL_LAB_PREFIX)")
	pf.StringVar(&o.stateDir, "state-dir", envOr(g.environ, "SITECTL_LAB_DIR", ""), "lab state dir (env SITECTL_LAB_DIR; default "+lab.DefaultStateDir+"-<prefix>)")
	cmd.AddCommand(newLabUpCommand(g, o), newLabStatusCommand(g, o), newLabDownCommand(g, o), newLabExecCommand(g, o))
	return cmd
}

func newLabUpCommand(g *globals, o *labOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring the lab up (idempotent: a second run changes nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := lab.Up(cmd.Context(), o.options(g))
			if err != nil {
				return err
			}
			if ok, err := g.printStructured(res); ok {
				return err
			}
			l := res.State.Layout
			if res.Changed {
				fmt.Fprintf(g.streams.Out, "lab %s is up: %d site(s), env overlay %s\n", l.Prefix, len(l.Sites), lab.OverlayPath(res.State.ConfigDir))
			} else {
				fmt.Fprintf(g.streams.Out, "lab %s was already up; nothing changed\n", l.Prefix)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&o.sites, "sites", nil, "sites to build (default: every site of the config)")
	cmd.Flags().BoolVar(&o.noImages, "no-images", false, "do not build or load the lab images")
	return cmd
}

func newLabDownCommand(g *globals, o *labOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove everything lab up made (processes, namespaces, interfaces, rules, state) and nothing else",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := lab.Down(cmd.Context(), o.options(g))
			if err != nil {
				return err
			}
			if ok, err := g.printStructured(res); ok {
				return err
			}
			fmt.Fprintf(g.streams.Out, "lab %s removed: %d process(es), %d namespace(s), %d file(s)\n", o.prefixOr(), res.Processes, len(res.Namespaces), len(res.Files))
			return nil
		},
	}
}

func (o *labOptions) prefixOr() string {
	if o.prefix == "" {
		return lab.DefaultPrefix
	}
	return o.prefix
}

func newLabStatusCommand(g *globals, o *labOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show every namespace, engine, gateway and image of the lab (real or stand-in)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := lab.GetStatus(cmd.Context(), o.options(g))
			if err != nil {
				return err
			}
			if ok, err := g.printStructured(st); ok {
				if err == nil && !st.Up {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			printLabStatus(g, st)
			if !st.Up {
				return &ExitError{Code: 1, Err: fmt.Errorf("lab %s is not healthy: %s; `sitectl lab down` then `sitectl lab up`", st.Prefix, st.Problem)}
			}
			return nil
		},
	}
}

func printLabStatus(g *globals, st *lab.Status) {
	w := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
	state := "up"
	if !st.Up {
		state = "NOT HEALTHY: " + st.Problem
	}
	fmt.Fprintf(w, "lab %s: %s (state %s, %.0f MiB)\n", st.Prefix, state, st.StateDir, st.MemoryMiB)
	fmt.Fprintf(w, "WAN namespace %s: %s\n\n", st.WAN.Name, yesNo(st.WAN.Exists, "present", "MISSING"))
	fmt.Fprintln(w, "SITE\tNAMESPACE\tWHAT\tADDRESS\tSTATE")
	for _, s := range st.Sites {
		fmt.Fprintf(w, "%s\t%s\tgateway (wan %s)\t%s\t%s, %d IKE SA(s)\n", s.Name, s.Gateway.Namespace, s.Gateway.WANAddress, s.Gateway.LANAddress, s.Gateway.Charon, s.Gateway.SAs)
		if s.Postgres.Address != "" {
			fmt.Fprintf(w, "%s\t%s\tpostgres\t%s\t%s\n", s.Name, s.Gateway.Namespace, s.Postgres.Address, s.Postgres.State)
		}
		for _, n := range s.Nodes {
			state := n.Error
			if state == "" {
				state = fmt.Sprintf("dockerd %s, swarm %s %s, %d container(s), labels %s", n.Version, n.SwarmRole, n.NodeState, n.Containers, labelString(n.Labels))
			}
			fmt.Fprintf(w, "%s\t%s\tnode %s\t%s\t%s\n", s.Name, n.Namespace, n.Node, n.Address, state)
		}
	}
	if r := st.Receiver; r != nil {
		fmt.Fprintf(w, "\nalert receiver %s (pid %d, the hub's Alertmanager posts to /hook, drills read /received): %s\n", r.URL, r.PID, r.State)
	}
	if len(st.Images) > 0 {
		fmt.Fprintln(w, "\nIMAGE\tREF\tKIND\tFROM")
		for _, im := range st.Images {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", im.Logical, im.Ref, yesNo(im.Real, "real", "stand-in"), im.Source)
		}
	}
	_ = w.Flush() // terminal output: as with fmt.Fprintf, an error has nowhere better to go
}

func labelString(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	if len(parts) == 0 {
		return "-"
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func newLabExecCommand(g *globals, o *labOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "exec SITE[/NODE] -- CMD [ARG...]",
		Short: "Run a command in a site's gateway namespace (SITE) or a node's namespace (SITE/NODE)",
		Long: `Runs CMD inside the lab: SITE alone is the site's gateway namespace, from which the
site's LAN (nodes, databases) is reachable; SITE/NODE is that node's namespace (its
dockerd is at the node's socket: see lab status). The exit code is CMD's.`,
		Example: `  sitectl lab exec SITE -- ping -c1 ADDRESS     (in the site's gateway)
  sitectl lab exec SITE/NODE -- ip addr          (in one node; sitectl lab status lists them)`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := o.options(g)
			ns, err := lab.ResolveNamespace(opts, args[0])
			if err != nil {
				return err
			}
			c := netns.Command(cmd.Context(), ns, args[1:]...)
			c.Stdin, c.Stdout, c.Stderr = g.streams.In, g.streams.Out, g.streams.Err
			if err := c.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return &ExitError{Code: ee.ExitCode(), Silent: true}
				}
				return err
			}
			return nil
		},
	}
}
