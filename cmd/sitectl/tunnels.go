package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sitectl/sitectl/internal/text"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
	"github.com/sitectl/sitectl/tunnels/firewall"
	"github.com/sitectl/sitectl/tunnels/service"
)

func newTunnelsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tunnels",
		Short: "strongSwan IPsec tunnels between the sites: config, certificates, status, up/down",
		Long: `Every link of the topology (hub and spoke, plus direct links) is an IKEv2 tunnel
between two site gateways. sitectl renders each gateway's swanctl.conf and
strongswan.conf, creates the CA and gateway certificates, and installs, checks and
controls the tunnels over vici (never by parsing swanctl output).`,
	}
	cmd.AddCommand(newTunnelsRenderCommand(g), newTunnelsCertsCommand(g), newTunnelsInstallCommand(g),
		newTunnelsStatusCommand(g), newTunnelsUpCommand(g), newTunnelsDownCommand(g))
	return cmd
}

// gatewaysOf builds the selected sites' gateways (every site when none is named).
func gatewaysOf(topo *sites.Topology, names []string) ([]*tunnels.Gateway, error) {
	sel, err := topo.Select(names...)
	if err != nil {
		return nil, err
	}
	all, err := tunnels.Build(topo)
	if err != nil {
		return nil, err
	}
	var out []*tunnels.Gateway
	for _, s := range sel {
		for _, gw := range all {
			if gw.Site == s.Name {
				out = append(out, gw)
			}
		}
	}
	return out, nil
}

type renderedGateway struct {
	*tunnels.Gateway
	Transit    []string `json:"transit_addresses,omitempty"`
	Swanctl    string   `json:"swanctl_conf"`
	Strongswan string   `json:"strongswan_conf"`
	Firewall   string   `json:"firewall_nft,omitempty"`
}

func newTunnelsRenderCommand(g *globals) *cobra.Command {
	var names []string
	var dir string
	var svc bool
	cmd := &cobra.Command{
		Use:   "render [--site S] [--dir D] [--service]",
		Short: "Print (or write under D/<site>/) each gateway's swanctl.conf, strongswan.conf and firewall.nft",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			if svc {
				return renderService(g, topo, names)
			}
			gws, err := gatewaysOf(topo, names)
			if err != nil {
				return err
			}
			var out []renderedGateway
			for _, gw := range gws {
				sc, err := tunnels.RenderStrongswan(gw)
				if err != nil {
					return err
				}
				r := renderedGateway{Gateway: gw, Transit: tunnels.TransitAddresses(gw), Swanctl: tunnels.RenderSwanctl(gw), Strongswan: sc}
				if site := topo.Site(gw.Site); site.Gateway.Firewall.Enabled {
					rs, err := firewall.Build(topo, site)
					if err != nil {
						return err
					}
					r.Firewall = rs.Render()
				}
				out = append(out, r)
			}
			if dir != "" {
				for _, r := range out {
					d := filepath.Join(dir, r.Site)
					if err := os.MkdirAll(d, 0o755); err != nil {
						return err
					}
					files := map[string]string{"swanctl.conf": r.Swanctl, "strongswan.conf": r.Strongswan}
					if r.Firewall != "" {
						files["firewall.nft"] = r.Firewall
					}
					for name, content := range files {
						if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
							return err
						}
					}
					fmt.Fprintf(g.streams.Out, "%s: wrote %s/{%s}\n", r.Site, d, strings.Join(slices.Sorted(maps.Keys(files)), ","))
				}
				return nil
			}
			if ok, err := g.printStructured(out); ok {
				return err
			}
			for _, r := range out {
				fmt.Fprintf(g.streams.Out, "==> %s/swanctl.conf <==\n%s\n==> %s/strongswan.conf <==\n%s\n", r.Site, r.Swanctl, r.Site, r.Strongswan)
				if r.Firewall != "" {
					fmt.Fprintf(g.streams.Out, "==> %s/firewall.nft <==\n%s\n", r.Site, r.Firewall)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&names, "site", nil, "sites to render (default: all)")
	cmd.Flags().StringVar(&dir, "dir", "", "write the files under this directory instead of printing them")
	cmd.Flags().BoolVar(&svc, "service", false, "print the strongSwan swarm stack (compose) for the gateway node instead")
	return cmd
}

// renderService prints the strongswan stack of each selected site (kernel IPsec
// gateways that are swarm nodes; see docs/tunnels.md).
func renderService(g *globals, topo *sites.Topology, names []string) error {
	sel, err := topo.Select(names...)
	if err != nil {
		return err
	}
	type stack struct {
		Site    string   `json:"site"`
		Compose string   `json:"compose"`
		Secrets []string `json:"secrets"`
	}
	var out []stack
	for _, s := range sel {
		r, secrets, err := service.Render(topo, s)
		if err != nil {
			return err
		}
		st := stack{Site: s.Name, Compose: string(r.Compose)}
		for name, ref := range secrets {
			st.Secrets = append(st.Secrets, name+" ← "+ref.String())
		}
		out = append(out, st)
	}
	if ok, err := g.printStructured(out); ok {
		return err
	}
	for _, st := range out {
		fmt.Fprintf(g.streams.Out, "==> %s: stack %s <==\n%s", st.Site, service.Name, st.Compose)
		for _, sec := range st.Secrets {
			fmt.Fprintf(g.streams.Out, "# secret %s\n", sec)
		}
	}
	return nil
}

func newTunnelsCertsCommand(g *globals) *cobra.Command {
	var names []string
	var check bool
	cmd := &cobra.Command{
		Use:   "certs [--site S] [--check]",
		Short: "Create the CA and gateway certificates that are missing, expired or expiring within 30 days",
		Long: `Creates, with Go's crypto/x509, a CA (in the hub's tunnel.pki_dir) and one certificate
per gateway (ECDSA per tunnel.key_type, SAN = gateway.id, valid tunnel.cert_lifetime)
in its site's tunnel.pki_dir: private keys 0600 in a 0700 directory, outside the
repository. Keys are never printed. --check only reports (exit 1 on a missing,
expired or invalid certificate).`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			sel, err := topo.Select(names...)
			if err != nil {
				return err
			}
			var states []tunnels.CertState
			caDone := map[string]bool{}
			bad := false
			for _, s := range sel {
				if s.Tunnel.Auth != "x509" {
					continue
				}
				ca, gw := tunnels.SiteCerts(topo, s)
				for _, d := range []string{ca.Dir, gw.Dir} {
					if err := tunnels.CheckOutsideRepo(d); err != nil {
						return err
					}
				}
				var caSt, gwSt tunnels.CertState
				if check {
					caSt, gwSt = tunnels.Check(ca, gw, s.Gateway.ID)
				} else {
					done := g.progress().Step("certificate %s", s.Gateway.ID)
					caSt, gwSt, err = tunnels.Ensure(ca, gw, s.Gateway.ID, s.Tunnel.KeyType, s.Tunnel.CertLifetime.D())
					done(err)
					if err != nil {
						return fmt.Errorf("tunnels certs %s: %w", s.Name, err)
					}
				}
				gwSt.Site = s.Name
				if !caDone[caSt.Path] {
					caDone[caSt.Path] = true
					states = append(states, caSt)
				}
				states = append(states, gwSt)
			}
			for _, st := range states {
				switch st.State {
				case tunnels.CertMissing, tunnels.CertExpired, tunnels.CertInvalid:
					bad = true
				}
			}
			if ok, err := g.printStructured(states); ok {
				if err == nil && bad {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			tw := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSITE\tSTATE\tNOT AFTER\tPATH\tPROBLEM")
			for _, st := range states {
				na := "-"
				if !st.NotAfter.IsZero() {
					na = st.NotAfter.UTC().Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, text.OrDash(st.Site), st.State, na, st.Path, st.Problem)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if bad {
				return &ExitError{Code: 1, Err: errors.New("some certificates are missing, expired or invalid: run `sitectl tunnels certs`")}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&names, "site", nil, "sites (default: all)")
	cmd.Flags().BoolVar(&check, "check", false, "only report, change nothing")
	return cmd
}

func newTunnelsInstallCommand(g *globals) *cobra.Command {
	var names []string
	cmd := &cobra.Command{
		Use:   "install [--site S]",
		Short: "Load credentials and connections into each gateway's charon over vici",
		Long: `Checks every selected gateway's certificates and secrets first (nothing is sent
when one is missing, expired or unreadable), then applies the tunnels part of deploy's
plan, gateway by gateway: renews an expiring certificate, loads the CA, the gateway
certificate and key unless charon holds them, PSKs and the connections that are
missing or differ over vici, and unloads connections sitectl made that the topology
no longer has.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			gws, err := gatewaysOf(topo, names)
			if err != nil {
				return err
			}
			for _, gw := range gws {
				m, err := tunnels.Prepare(topo, gw)
				if err != nil {
					return err
				}
				if m.Warning != "" {
					g.progress().Warnf("%s", m.Warning)
				}
			}
			// The tunnels part of deploy, applied: plan each gateway, then apply its steps.
			for _, gw := range gws {
				steps, err := tunnels.Part{}.Plan(cmd.Context(), topo, topo.Site(gw.Site))
				if err != nil {
					return err
				}
				_, err = plan.Apply(cmd.Context(), steps, func(st plan.Step) func(error) {
					return g.progress().Step("%s: %s", gw.Site, st)
				})
				if err != nil {
					return fmt.Errorf("install tunnels on %s: %w", gw.Site, err)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&names, "site", nil, "sites (default: all)")
	return cmd
}

func newTunnelsStatusCommand(g *globals) *cobra.Command {
	var names []string
	cmd := &cobra.Command{
		Use:   "status [--site S]",
		Short: "Each link's state from its gateways: IKE and CHILD SA, established since, bytes and packets",
		Long: `Asks each selected site's gateway over vici (list-conns, list-sas). With --site only
that site's gateway is asked. A link is up when every asked end has an established
IKE_SA with an installed CHILD_SA, cut when an end has its connection unloaded
(tunnels down), down otherwise. Exit code 1 when a link is not up or an asked
gateway could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			st, err := tunnels.Status(cmd.Context(), topo, names...)
			if err != nil {
				return err
			}
			problem := tunnelsProblem(st)
			if ok, err := g.printStructured(st); ok {
				if err == nil && problem != nil {
					err = &ExitError{Code: 1, Silent: true}
				}
				return err
			}
			tw := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LINK\tSTATE\tEND\tDETAIL")
			for _, l := range st {
				for i, e := range l.Ends {
					link, state := l.Link, l.State
					if i > 0 {
						link, state = "", ""
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", link, state, e.Site, e.Summary())
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if problem != nil {
				return &ExitError{Code: 1, Err: problem}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&names, "site", nil, "ask only these sites' gateways (default: all)")
	return cmd
}

// tunnelsProblem is why `tunnels status` fails, nil when it passes: a link not up,
// or a gateway that could not be read (a link its peer sees up is shown up, but a
// read that failed is never a pass).
func tunnelsProblem(st []tunnels.LinkStatus) error {
	notUp := 0
	var unread []string
	for _, l := range st {
		if l.State != tunnels.StateUp {
			notUp++
		}
		for _, e := range l.Ends {
			if e.Error != "" && !slices.Contains(unread, e.Site) {
				unread = append(unread, e.Site)
			}
		}
	}
	var parts []string
	if notUp > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d links not up", notUp, len(st)))
	}
	if len(unread) > 0 {
		sort.Strings(unread)
		parts = append(parts, "could not read the gateway of "+strings.Join(unread, ", "))
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New(strings.Join(parts, "; "))
}

func newTunnelsUpCommand(g *globals) *cobra.Command {
	var links []string
	cmd := &cobra.Command{
		Use:   "up [--link L]",
		Short: "Bring links up (undo tunnels down): load the connection at both ends, initiate, wait",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			if len(links) == 0 {
				for _, l := range topo.Links {
					links = append(links, l.Name())
				}
			}
			for _, name := range links {
				done := g.progress().Step("link %s up", name)
				err := tunnels.Heal(cmd.Context(), topo, name)
				done(err)
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&links, "link", nil, "links to bring up, named <site>-<site> as tunnels status lists them (default: all)")
	return cmd
}

func newTunnelsDownCommand(g *globals) *cobra.Command {
	var links []string
	cmd := &cobra.Command{
		Use:   "down --link L",
		Short: "Cut links: unload the connection at both ends and terminate its SAs (tunnels up heals)",
		Long: `Unloads the link's connection on both gateways and terminates its IKE_SA, so
neither start_action = trap nor DPD restart can bring it back: the link stays cut
until ` + "`sitectl tunnels up --link L`" + ` (or a deploy, which loads it again). This is what
partition drills use.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(links) == 0 {
				return errors.New("name the link to cut: --link <site>-<site> (see `sitectl tunnels status`)")
			}
			topo, err := g.loadTopology()
			if err != nil {
				return err
			}
			for _, name := range links {
				done := g.progress().Step("link %s down", name)
				err := tunnels.Cut(cmd.Context(), topo, name)
				done(err)
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&links, "link", nil, "links to cut, named <site>-<site> as tunnels status lists them (repeatable)")
	markRequired(cmd, "link", "")
	return cmd
}
