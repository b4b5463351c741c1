// Package swarm brings a site's nodes into that site's own Docker Swarm: it reads the
// live state of every node's engine, computes typed steps (init the swarm on the first
// manager, join the other nodes with their roles, set node labels) and applies them.
// A second run over a converged site has no steps.
package swarm

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// Engine is the part of a Docker engine client this package uses; *client.Client has
// it.
type Engine interface {
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	SwarmInit(ctx context.Context, options client.SwarmInitOptions) (client.SwarmInitResult, error)
	SwarmJoin(ctx context.Context, options client.SwarmJoinOptions) (client.SwarmJoinResult, error)
	SwarmInspect(ctx context.Context, options client.SwarmInspectOptions) (client.SwarmInspectResult, error)
	NodeInspect(ctx context.Context, nodeID string, options client.NodeInspectOptions) (client.NodeInspectResult, error)
	NodeUpdate(ctx context.Context, nodeID string, options client.NodeUpdateOptions) (client.NodeUpdateResult, error)
}

// Component names of the steps.
const (
	ComponentSwarm plan.Component = "swarm"
	ComponentNode  plan.Component = "node"
)

// ManagerPort is the swarm control plane port.
const ManagerPort = "2377"

// nodeState is what one node's engine says about itself.
type nodeState struct {
	node    *sites.Node
	engine  Engine
	info    system.Info
	active  bool // in a swarm
	manager bool // a reachable manager of its swarm
}

// DesiredLabels are the labels the site config asks for on a node: its own labels,
// plus site=<site> unless set.
func DesiredLabels(site *sites.Site, n *sites.Node) map[string]string {
	out := map[string]string{"site": site.Name}
	for k, v := range n.Labels {
		out[k] = v
	}
	return out
}

// Plan reads every node's engine (engines is keyed by node name) and returns the steps
// that make the site's swarm match its config. It changes nothing.
func Plan(ctx context.Context, site *sites.Site, engines map[string]Engine) ([]plan.Step, error) {
	if len(site.Nodes) == 0 {
		return nil, fmt.Errorf("site %s: no nodes in the config", site.Name)
	}
	states := make([]*nodeState, 0, len(site.Nodes))
	for i := range site.Nodes {
		n := &site.Nodes[i]
		e := engines[n.Name]
		if e == nil {
			return nil, fmt.Errorf("site %s: no engine for node %s (set nodes[].engine for it)", site.Name, n.Name)
		}
		res, err := e.Info(ctx, client.InfoOptions{})
		if err != nil {
			return nil, fmt.Errorf("site %s: node %s: read engine info: %w", site.Name, n.Name, err)
		}
		st := &nodeState{node: n, engine: e, info: res.Info}
		switch res.Info.Swarm.LocalNodeState {
		case swarm.LocalNodeStateActive:
			st.active = true
			st.manager = res.Info.Swarm.ControlAvailable
		case swarm.LocalNodeStateInactive:
		default:
			return nil, fmt.Errorf("site %s: node %s is in swarm state %q (want active or inactive); fix it with `docker swarm leave --force` on that node", site.Name, n.Name, res.Info.Swarm.LocalNodeState)
		}
		states = append(states, st)
	}

	// The site's swarm: the one its active managers belong to.
	var lead *nodeState
	cluster := ""
	for _, st := range states {
		if st.manager {
			if lead == nil {
				lead = st
				cluster = clusterID(st.info)
			} else if clusterID(st.info) != cluster {
				return nil, fmt.Errorf("site %s: nodes %s and %s manage different swarms; one site is one swarm: make one of them leave (`docker swarm leave --force`)", site.Name, lead.node.Name, st.node.Name)
			}
		}
	}
	for _, st := range states {
		if st.active && !st.manager && lead == nil {
			return nil, fmt.Errorf("site %s: node %s is a worker of a swarm none of the site's managers runs; make it leave (`docker swarm leave --force` on that node)", site.Name, st.node.Name)
		}
		if st.manager && clusterID(st.info) != cluster {
			return nil, fmt.Errorf("site %s: node %s is in another swarm (cluster %s, site's is %s); make it leave (`docker swarm leave --force` on that node)", site.Name, st.node.Name, clusterID(st.info), cluster)
		}
	}

	var steps []plan.Step
	if lead == nil {
		first := firstManager(states)
		if first == nil {
			return nil, fmt.Errorf("site %s: no node has role manager; set one node's role to manager", site.Name)
		}
		steps = append(steps, initStep(site, first))
		lead = first
	}
	for _, st := range states {
		if st == lead || st.active {
			continue
		}
		steps = append(steps, joinStep(site, st, lead))
	}
	for _, st := range states {
		s, err := nodeStep(ctx, site, st, lead)
		if err != nil {
			return nil, err
		}
		if s != nil {
			steps = append(steps, *s)
		}
	}
	return steps, nil
}

// Apply runs the steps in order, stopping at the first failure.
func Apply(ctx context.Context, steps []plan.Step) error {
	for _, s := range steps {
		if s.Apply == nil {
			continue
		}
		if err := s.Apply(ctx); err != nil {
			return fmt.Errorf("%s %s %s: %w", s.Site, s.Component, s.Name, err)
		}
	}
	return nil
}

func firstManager(states []*nodeState) *nodeState {
	for _, st := range states {
		if st.node.Role == "manager" {
			return st
		}
	}
	return nil
}

func initStep(site *sites.Site, st *nodeState) plan.Step {
	addr := st.node.Address
	var pools []netip.Prefix
	for _, p := range site.Swarm.DefaultAddrPool {
		if pp, err := netip.ParsePrefix(p); err == nil {
			pools = append(pools, pp)
		}
	}
	diff := []string{
		"manager: " + st.node.Name,
		"advertise: " + addr,
		"default address pool: " + strings.Join(site.Swarm.DefaultAddrPool, ", ") + fmt.Sprintf(" (subnets /%d)", site.Swarm.SubnetSize),
	}
	return plan.Step{
		Site: site.Name, Component: ComponentSwarm, Action: plan.Create, Name: site.Name, Diff: diff,
		Apply: func(ctx context.Context) error {
			_, err := st.engine.SwarmInit(ctx, client.SwarmInitOptions{
				ListenAddr:      net.JoinHostPort(addr, ManagerPort),
				AdvertiseAddr:   addr,
				DefaultAddrPool: pools,
				SubnetSize:      uint32(site.Swarm.SubnetSize),
			})
			return err
		},
	}
}

func joinStep(site *sites.Site, st, lead *nodeState) plan.Step {
	role := st.node.Role
	return plan.Step{
		Site: site.Name, Component: ComponentNode, Action: plan.Create, Name: st.node.Name,
		Diff: []string{"join as " + role + " via " + lead.node.Name, "advertise: " + st.node.Address},
		Apply: func(ctx context.Context) error {
			sw, err := lead.engine.SwarmInspect(ctx, client.SwarmInspectOptions{})
			if err != nil {
				return fmt.Errorf("read join tokens from %s: %w", lead.node.Name, err)
			}
			token := sw.Swarm.JoinTokens.Worker
			if role == "manager" {
				token = sw.Swarm.JoinTokens.Manager
			}
			_, err = st.engine.SwarmJoin(ctx, client.SwarmJoinOptions{
				ListenAddr:    net.JoinHostPort(st.node.Address, ManagerPort),
				AdvertiseAddr: st.node.Address,
				RemoteAddrs:   []string{net.JoinHostPort(lead.node.Address, ManagerPort)},
				JoinToken:     token,
			})
			return err
		},
	}
}

// nodeStep compares a node's role and labels with the config. For a node not yet in
// the swarm everything is to set, and its ID is read when the step runs.
func nodeStep(ctx context.Context, site *sites.Site, st, lead *nodeState) (*plan.Step, error) {
	want := DesiredLabels(site, st.node)
	var have map[string]string
	haveRole := ""
	if st.active {
		res, err := lead.engine.NodeInspect(ctx, st.info.Swarm.NodeID, client.NodeInspectOptions{})
		if err != nil {
			// A worker's engine cannot name its cluster: a node the site's managers do
			// not know is in another swarm.
			return nil, fmt.Errorf("site %s: node %s (id %s) is not known to %s's swarm: %w; if it joined another swarm, make it leave (`docker swarm leave --force` on that node)", site.Name, st.node.Name, st.info.Swarm.NodeID, lead.node.Name, err)
		}
		have = res.Node.Spec.Labels
		haveRole = string(res.Node.Spec.Role)
	} else if st == lead {
		haveRole = "manager" // it inits the swarm
	} else {
		haveRole = st.node.Role // it joins with its role
	}
	var diff []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if old, ok := have[k]; !ok {
			diff = append(diff, fmt.Sprintf("label %s: (none) → %s", k, want[k]))
		} else if old != want[k] {
			diff = append(diff, fmt.Sprintf("label %s: %s → %s", k, old, want[k]))
		}
	}
	if haveRole != st.node.Role {
		diff = append(diff, fmt.Sprintf("role: %s → %s", haveRole, st.node.Role))
	}
	if len(diff) == 0 {
		return nil, nil
	}
	role := st.node.Role
	return &plan.Step{
		Site: site.Name, Component: ComponentNode, Action: plan.Update, Name: st.node.Name, Diff: diff,
		Apply: func(ctx context.Context) error {
			info, err := st.engine.Info(ctx, client.InfoOptions{})
			if err != nil {
				return err
			}
			id := info.Info.Swarm.NodeID
			if id == "" {
				return fmt.Errorf("node %s is not in the swarm", st.node.Name)
			}
			res, err := lead.engine.NodeInspect(ctx, id, client.NodeInspectOptions{})
			if err != nil {
				return err
			}
			spec := res.Node.Spec
			if spec.Labels == nil {
				spec.Labels = map[string]string{}
			}
			for k, v := range want {
				spec.Labels[k] = v
			}
			spec.Role = swarm.NodeRole(role)
			_, err = lead.engine.NodeUpdate(ctx, id, client.NodeUpdateOptions{Version: res.Node.Version, Spec: spec})
			return err
		},
	}, nil
}

// clusterID is the swarm a manager belongs to ("" for workers, which cannot tell).
func clusterID(info system.Info) string {
	if info.Swarm.Cluster == nil {
		return ""
	}
	return info.Swarm.Cluster.ID
}
