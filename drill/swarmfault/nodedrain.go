package swarmfault

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

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

	mu    sync.Mutex
	id    string
	saved swarm.NodeAvailability
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
	f.mu.Lock()
	if f.id == "" {
		f.id, f.saved = n.ID, n.Spec.Availability
	}
	id, saved := f.id, f.saved
	f.mu.Unlock()
	if saved == "" || saved == swarm.NodeAvailabilityDrain {
		saved = swarm.NodeAvailabilityActive
	}
	return drill.FaultRecord{Kind: drill.RecordNode, What: fmt.Sprintf("node %s at %s drained (was %s)", f.Node, f.Site, saved),
		Sites: []string{f.Site}, Site: f.Site, Node: f.Node, NodeID: id, Availability: string(saved)}, nil
}

// NodeDrainFrom is the fault a record describes, ready for Remove: the node's
// recorded availability put back.
func NodeDrainFrom(r drill.FaultRecord, e Engine) (*NodeDrain, error) {
	if r.Kind != drill.RecordNode || r.NodeID == "" {
		return nil, fmt.Errorf("record %q is not a complete node record (node id %q)", r.What, r.NodeID)
	}
	return &NodeDrain{Site: r.Site, Node: r.Node, Engine: e, id: r.NodeID, saved: swarm.NodeAvailability(r.Availability)}, nil
}

// Inject records the node's availability, drains it and waits until none of its
// tasks runs.
func (f *NodeDrain) Inject(ctx context.Context) error {
	n, err := FindNode(ctx, f.Engine, f.Node)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Site, err)
	}
	f.mu.Lock()
	if f.id == "" {
		f.id, f.saved = n.ID, n.Spec.Availability
	}
	f.mu.Unlock()
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
// node).
func (f *NodeDrain) Remove(ctx context.Context) error {
	f.mu.Lock()
	id, saved := f.id, f.saved
	f.mu.Unlock()
	if id == "" {
		return nil
	}
	if saved == "" || saved == swarm.NodeAvailabilityDrain {
		saved = swarm.NodeAvailabilityActive
	}
	return f.set(ctx, saved)
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
