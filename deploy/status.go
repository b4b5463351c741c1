package deploy

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/text"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts"
	"github.com/sitectl/sitectl/tunnels/firewall"
)

// SiteStatus is what `sitectl status` shows of one site.
type SiteStatus struct {
	Site     string          `json:"site"`
	Swarm    string          `json:"swarm"` // active, inactive, ...
	Nodes    []NodeStatus    `json:"nodes"`
	Services []ServiceStatus `json:"services"`
	// Apps are the operator apps declared at the site (apps/), as they run.
	Apps     []AppStatus     `json:"apps,omitempty"`
	Networks []NetworkStatus `json:"networks"`
	Lock     *LockHolder     `json:"lock,omitempty"`
	Firewall *FirewallStatus `json:"firewall,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Alerts are the site's alerts at the hub's Alertmanager (filled by the CLI);
	// AlertsError says why they could not be read.
	Alerts      []alerts.Alert `json:"alerts,omitempty"`
	AlertsError string         `json:"alerts_error,omitempty"`
}

// FirewallStatus is the gateway's table inet sitectl: present or not, and its drop
// counters (tunnels/firewall).
type FirewallStatus struct {
	Present  bool               `json:"present"`
	Counters []firewall.Counter `json:"counters,omitempty"`
	Error    string             `json:"error,omitempty"`
}

// firewallStatus reads the gateway's counters over the gateway's access path.
func firewallStatus(ctx context.Context, site *sites.Site) *FirewallStatus {
	if !site.Gateway.Firewall.Enabled {
		return nil
	}
	r, err := firewall.RunnerFor(site)
	if err != nil {
		return &FirewallStatus{Error: err.Error()}
	}
	cs, present, err := r.Counters(ctx)
	if err != nil {
		return &FirewallStatus{Error: err.Error()}
	}
	return &FirewallStatus{Present: present, Counters: cs}
}

// NodeStatus is one swarm node.
type NodeStatus struct {
	Hostname     string            `json:"hostname"`
	Role         string            `json:"role"`
	Availability string            `json:"availability"`
	State        string            `json:"state"`
	Address      string            `json:"address"`
	Leader       bool              `json:"leader,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// ServiceStatus is one service.
type ServiceStatus struct {
	Name        string    `json:"name"`
	Stack       string    `json:"stack,omitempty"`
	Running     uint64    `json:"running"`
	Desired     uint64    `json:"desired"`
	Image       string    `json:"image"`
	UpdatedAt   time.Time `json:"updated_at"`
	UpdateState string    `json:"update_state,omitempty"`
	Managed     bool      `json:"managed"`
}

// NetworkStatus is one swarm-scoped network.
type NetworkStatus struct {
	Name       string `json:"name"`
	Driver     string `json:"driver"`
	Subnet     string `json:"subnet,omitempty"`
	Encrypted  bool   `json:"encrypted"`
	Attachable bool   `json:"attachable"`
	Managed    bool   `json:"managed"`
}

// Status reads every selected site (in parallel).
func Status(ctx context.Context, topo *sites.Topology, selected []*sites.Site, opts Options) []SiteStatus {
	out := make([]SiteStatus, len(selected))
	forEach(selected, func(i int, site *sites.Site) {
		st, err := siteStatus(ctx, topo, site, opts)
		if err != nil {
			st.Error = fmt.Sprintf("status %s: %v", site.Name, err)
		} else {
			// Only a site that answers is asked about its gateway's firewall: an
			// unreachable site would wait out one more timeout.
			st.Firewall = firewallStatus(ctx, site)
			st.Apps = appStatus(topo, site.Name, st.Services)
		}
		out[i] = st
	})
	return out
}

func siteStatus(ctx context.Context, topo *sites.Topology, site *sites.Site, opts Options) (SiteStatus, error) {
	st := SiteStatus{Site: site.Name, Nodes: []NodeStatus{}, Services: []ServiceStatus{}, Networks: []NetworkStatus{}}
	eng, closeEng, err := opts.open(ctx, site)
	if err != nil {
		return st, err
	}
	defer closeEng()
	s := newSession(topo, site, eng, opts)
	info, err := eng.Info(ctx, client.InfoOptions{})
	if err != nil {
		return st, err
	}
	st.Swarm = string(info.Info.Swarm.LocalNodeState)
	if active, _, err := s.swarmState(ctx); err != nil || !active {
		return st, err
	}
	nodes, err := eng.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return st, fmt.Errorf("list nodes: %w", err)
	}
	for _, n := range nodes.Items {
		ns := NodeStatus{Hostname: n.Description.Hostname, Role: string(n.Spec.Role), Availability: string(n.Spec.Availability),
			State: string(n.Status.State), Address: n.Status.Addr, Labels: n.Spec.Labels}
		if n.ManagerStatus != nil {
			ns.Leader = n.ManagerStatus.Leader
		}
		st.Nodes = append(st.Nodes, ns)
	}
	sort.Slice(st.Nodes, func(i, j int) bool {
		return st.Nodes[i].Hostname+st.Nodes[i].Address < st.Nodes[j].Hostname+st.Nodes[j].Address
	})
	svcs, err := eng.ServiceList(ctx, client.ServiceListOptions{Status: true})
	if err != nil {
		return st, fmt.Errorf("list services: %w", err)
	}
	for _, x := range svcs.Items {
		ss := ServiceStatus{Name: x.Spec.Name, Stack: x.Spec.Labels[stacks.LabelStack], UpdatedAt: x.UpdatedAt, Managed: managedBy(x.Spec.Labels, site.Name)}
		if cs := x.Spec.TaskTemplate.ContainerSpec; cs != nil {
			ss.Image = cs.Image
		}
		if x.ServiceStatus != nil {
			ss.Running, ss.Desired = x.ServiceStatus.RunningTasks, x.ServiceStatus.DesiredTasks
		}
		if x.UpdateStatus != nil {
			ss.UpdateState = string(x.UpdateStatus.State)
		}
		st.Services = append(st.Services, ss)
	}
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	nets, err := eng.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return st, fmt.Errorf("list networks: %w", err)
	}
	for _, n := range nets.Items {
		if n.Scope != "swarm" {
			continue
		}
		v := networkView(n.Driver, &n.IPAM, n.Options, n.Attachable, n.Internal)
		st.Networks = append(st.Networks, NetworkStatus{Name: n.Name, Driver: n.Driver, Subnet: v.subnet,
			Encrypted: v.encrypted, Attachable: n.Attachable, Managed: managedBy(n.Labels, site.Name)})
	}
	sort.Slice(st.Networks, func(i, j int) bool { return st.Networks[i].Name < st.Networks[j].Name })
	st.Lock, err = s.lockStatus(ctx)
	return st, err
}

// RenderStatus prints sites' status as tables.
func RenderStatus(w io.Writer, all []SiteStatus, now time.Time) error {
	var b strings.Builder
	table := func(header string, rows [][]string) {
		if len(rows) == 0 {
			return
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  "+header)
		for _, r := range rows {
			fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
		}
		_ = tw.Flush() // writes to a strings.Builder, which does not fail
	}
	for i, st := range all {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s (swarm %s)\n", st.Site, text.OrDash(st.Swarm))
		if st.Error != "" {
			fmt.Fprintf(&b, "  ✗ %s\n", st.Error)
		}
		if st.Lock != nil {
			fmt.Fprintf(&b, "  deploy lock held by %s\n", st.Lock)
		}
		var rows [][]string
		for _, n := range st.Nodes {
			role := n.Role
			if n.Leader {
				role += " (leader)"
			}
			rows = append(rows, []string{n.Hostname, role, n.State, n.Availability, n.Address, labelList(n.Labels)})
		}
		table("NODE\tROLE\tSTATE\tAVAILABILITY\tADDRESS\tLABELS", rows)
		rows = nil
		for _, x := range st.Services {
			name := x.Name
			if !x.Managed {
				name += " (not sitectl's)"
			}
			rows = append(rows, []string{name, fmt.Sprintf("%d/%d", x.Running, x.Desired), x.Image,
				now.Sub(x.UpdatedAt).Round(time.Second).String() + " ago", text.OrDash(x.UpdateState)})
		}
		table("SERVICE\tRUNNING\tIMAGE\tUPDATED\tUPDATE STATE", rows)
		table("APP\tSTATE\tRUNNING\tIMAGE\tROUTES", appRows(st))
		rows = nil
		for _, n := range st.Networks {
			rows = append(rows, []string{n.Name, n.Driver, text.OrDash(n.Subnet), yesNo(n.Encrypted), yesNo(n.Attachable)})
		}
		table("NETWORK\tDRIVER\tSUBNET\tENCRYPTED\tATTACHABLE", rows)
		if f := st.Firewall; f != nil {
			switch {
			case f.Error != "":
				fmt.Fprintf(&b, "  firewall: ✗ %s\n", f.Error)
			case !f.Present:
				b.WriteString("  firewall: no table inet sitectl on the gateway (deploy applies it)\n")
			default:
				var parts []string
				for _, c := range f.Counters {
					parts = append(parts, fmt.Sprintf("%s %d", c.Name, c.Packets))
				}
				fmt.Fprintf(&b, "  firewall: table inet sitectl; dropped packets: %s\n", strings.Join(parts, ", "))
			}
		}
		if st.AlertsError != "" {
			fmt.Fprintf(&b, "  alerts: ✗ %s\n", st.AlertsError)
		}
		rows = nil
		for _, a := range st.Alerts {
			state := "firing"
			if !a.Firing() {
				state = a.State
				if len(a.InhibitedBy) > 0 {
					state = "inhibited"
				} else if len(a.SilencedBy) > 0 {
					state = "silenced"
				}
			}
			rows = append(rows, []string{a.Name, state, text.OrDash(a.Severity), now.Sub(a.StartsAt).Round(time.Second).String(), text.OrDash(a.Summary)})
		}
		table("ALERT\tSTATE\tSEVERITY\tFOR\tSUMMARY", rows)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func labelList(m map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return text.OrDash(strings.Join(out, ","))
}
