package swarmfault

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/drill"
)

// NodeDrain drains a swarm node (its tasks move elsewhere when their placement
// allows) and puts its availability back.
type NodeDrain struct {
	Site   string
	Node   string // hostname or node ID
	Engine Engine

	mu       sync.Mutex
	id       string
	saved    swarm.NodeAvailability
	services []string // IDs of the services that ran a task on the node before the drain
}

var (
	_ drill.Fault      = (*NodeDrain)(nil)
	_ drill.Recordable = (*NodeDrain)(nil)
)

// Name is "node douala-db1".
func (f *NodeDrain) Name() string { return "node " + f.Node }

// Events are down / restore.
func (f *NodeDrain) Events() (string, string) { return drill.EvDown, drill.EvRestore }

// Manual is the command that restores the node by hand.
func (f *NodeDrain) Manual() string {
	return fmt.Sprintf("docker node update --availability active %s (on %s's manager)", f.Node, f.Site)
}

// FindNode returns the ID of the node whose hostname or ID is name.
func FindNode(ctx context.Context, e Engine, name string) (swarm.Node, error) {
	res, err := e.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return swarm.Node{}, err
	}
	var names []string
	for _, n := range res.Items {
		if n.ID == name || n.Description.Hostname == name || n.Spec.Name == name {
			return n, nil
		}
		names = append(names, n.Description.Hostname)
	}
	sort.Strings(names)
	return swarm.Node{}, fmt.Errorf("no swarm node %q (nodes: %s)", name, strings.Join(names, ", "))
}

// Record finds the node, reads the availability Remove will put back and
// describes the fault for the drill's journal; Inject then keeps it.
func (f *NodeDrain) Record(ctx context.Context) (drill.FaultRecord, error) {
	n, err := FindNode(ctx, f.Engine, f.Node)
	if err != nil {
		return drill.FaultRecord{}, fmt.Errorf("%s: %w", f.Site, err)
	}
	if err := f.keep(ctx, n); err != nil {
		return drill.FaultRecord{}, err
	}
	f.mu.Lock()
	id, saved, services := f.id, f.saved, f.services
	f.mu.Unlock()
	if saved == "" || saved == swarm.NodeAvailabilityDrain {
		saved = swarm.NodeAvailabilityActive
	}
	return drill.FaultRecord{Kind: drill.RecordNode, What: fmt.Sprintf("node %s at %s drained (was %s)", f.Node, f.Site, saved),
		Sites: []string{f.Site}, Site: f.Site, Node: f.Node, NodeID: id, Availability: string(saved), Services: services}, nil
}

// keep notes, once, the node's ID, its availability and the services running a
// task on it: Remove puts the availability back and waits for those services.
func (f *NodeDrain) keep(ctx context.Context, n swarm.Node) error {
	f.mu.Lock()
	kept := f.id != ""
	f.mu.Unlock()
	if kept {
		return nil
	}
	res, err := f.Engine.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("node", n.ID).Add("desired-state", "running")})
	if err != nil {
		return fmt.Errorf("%s: tasks on node %s: %w", f.Site, f.Node, err)
	}
	seen := map[string]bool{}
	var services []string
	for _, t := range res.Items {
		if t.ServiceID != "" && !seen[t.ServiceID] {
			seen[t.ServiceID] = true
			services = append(services, t.ServiceID)
		}
	}
	sort.Strings(services)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.id == "" {
		f.id, f.saved, f.services = n.ID, n.Spec.Availability, services
	}
	return nil
}

// NodeDrainFrom is the fault a record describes, ready for Remove: the node's
// recorded availability put back.
func NodeDrainFrom(r drill.FaultRecord, e Engine) (*NodeDrain, error) {
	if r.Kind != drill.RecordNode || r.NodeID == "" {
		return nil, fmt.Errorf("record %q is not a complete node record (node id %q)", r.What, r.NodeID)
	}
	return &NodeDrain{Site: r.Site, Node: r.Node, Engine: e, id: r.NodeID, saved: swarm.NodeAvailability(r.Availability), services: r.Services}, nil
}

// Inject records the node's availability, drains it and waits until none of its
// tasks runs.
func (f *NodeDrain) Inject(ctx context.Context) error {
	n, err := FindNode(ctx, f.Engine, f.Node)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Site, err)
	}
	if err := f.keep(ctx, n); err != nil {
		return err
	}
	if err := f.set(ctx, swarm.NodeAvailabilityDrain); err != nil {
		return err
	}
	// The node counts as lost once its containers stopped, not when swarm was told:
	// until then a database there still takes writes. A node already down reports
	// nothing more: there is nothing to wait for.
	for {
		running, err := liveTasks(ctx, f.Engine, make(client.Filters).Add("node", n.ID))
		if err != nil {
			return fmt.Errorf("%s: tasks on node %s: %w", f.Site, f.Node, err)
		}
		if len(running) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: node %s still runs %d task(s) after the drain: %w", f.Site, f.Node, len(running), ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Remove restores the recorded availability (nothing when Inject never found the
// node) and, for an active node, waits until every service that ran a task there
// before the drain runs all its tasks again: a database pinned to the node is back
// only once its task runs (and passed its health check), and what heals after the
// node (the replication resync) needs it.
func (f *NodeDrain) Remove(ctx context.Context) error {
	f.mu.Lock()
	id, saved, services := f.id, f.saved, f.services
	f.mu.Unlock()
	if id == "" {
		return nil
	}
	if saved == "" || saved == swarm.NodeAvailabilityDrain {
		saved = swarm.NodeAvailabilityActive
	}
	if err := f.set(ctx, saved); err != nil {
		return err
	}
	if saved != swarm.NodeAvailabilityActive {
		return nil
	}
	for _, svc := range services {
		if err := f.waitService(ctx, svc); err != nil {
			return err
		}
	}
	return nil
}

// waitService waits until the service runs every task it wants: its replica count
// for a replicated service, every task swarm wants running for a global one. A
// service removed meanwhile has nothing to wait for.
func (f *NodeDrain) waitService(ctx context.Context, id string) error {
	for {
		svc, err := f.Engine.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: inspect service %s: %w", f.Site, id, err)
		}
		name := svc.Service.Spec.Name
		res, err := f.Engine.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", id).Add("desired-state", "running")})
		if err != nil {
			return fmt.Errorf("%s: tasks of %s: %w", f.Site, name, err)
		}
		running, want := 0, len(res.Items)
		for _, t := range res.Items {
			if t.Status.State == swarm.TaskStateRunning {
				running++
			}
		}
		if r := svc.Service.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
			want = int(*r.Replicas)
		}
		if running >= want && running == len(res.Items) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: node %s is active again but %s runs %d of %d task(s): %w", f.Site, f.Node, name, running, want, ctx.Err())
		case <-time.After(poll):
		}
	}
}

func (f *NodeDrain) set(ctx context.Context, a swarm.NodeAvailability) error {
	f.mu.Lock()
	id := f.id
	f.mu.Unlock()
	n, err := f.Engine.NodeInspect(ctx, id, client.NodeInspectOptions{})
	if err != nil {
		return fmt.Errorf("%s: inspect node %s: %w", f.Site, f.Node, err)
	}
	if n.Node.Spec.Availability == a {
		return nil
	}
	spec := n.Node.Spec
	spec.Availability = a
	if _, err := f.Engine.NodeUpdate(ctx, id, client.NodeUpdateOptions{Version: n.Node.Version, Spec: spec}); err != nil {
		return fmt.Errorf("%s: set node %s %s: %w", f.Site, f.Node, a, err)
	}
	return nil
}
