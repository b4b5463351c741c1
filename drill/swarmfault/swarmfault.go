// Package swarmfault injects the swarm-level faults of the db-down and node-loss
// drills through the Docker Engine API of a site's manager — a service scaled to zero
// replicas, a node drained — and always puts back what was there. It also probes what
// keeps running while a fault is in place.
package swarmfault

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/drill"
)

// Engine is the part of a site manager's Docker API the faults and probes use;
// *client.Client has it.
type Engine interface {
	ServiceList(ctx context.Context, options client.ServiceListOptions) (client.ServiceListResult, error)
	ServiceInspect(ctx context.Context, serviceID string, options client.ServiceInspectOptions) (client.ServiceInspectResult, error)
	ServiceUpdate(ctx context.Context, serviceID string, options client.ServiceUpdateOptions) (client.ServiceUpdateResult, error)
	NodeList(ctx context.Context, options client.NodeListOptions) (client.NodeListResult, error)
	NodeInspect(ctx context.Context, nodeID string, options client.NodeInspectOptions) (client.NodeInspectResult, error)
	NodeUpdate(ctx context.Context, nodeID string, options client.NodeUpdateOptions) (client.NodeUpdateResult, error)
	TaskList(ctx context.Context, options client.TaskListOptions) (client.TaskListResult, error)
}

// poll is how often the faults check that the swarm did what was asked.
const poll = 250 * time.Millisecond

// ServiceDown scales a replicated service to zero and back to its replica count.
type ServiceDown struct {
	Site    string
	Service string // full service name, e.g. postgres_db
	Engine  Engine

	mu    sync.Mutex
	saved *uint64 // replicas before Inject
}

var (
	_ drill.Fault      = (*ServiceDown)(nil)
	_ drill.Recordable = (*ServiceDown)(nil)
)

// Name is "service postgres_db at douala".
func (f *ServiceDown) Name() string { return "service " + f.Service + " at " + f.Site }

// Events are down / restore.
func (f *ServiceDown) Events() (string, string) { return drill.EvDown, drill.EvRestore }

// Manual is the command that restores the service by hand.
func (f *ServiceDown) Manual() string {
	n := uint64(1)
	f.mu.Lock()
	if f.saved != nil {
		n = *f.saved
	}
	f.mu.Unlock()
	return fmt.Sprintf("docker service scale %s=%d (on %s's manager)", f.Service, n, f.Site)
}

// Record reads the replica count Remove will put back and describes the fault for
// the drill's journal; Inject then keeps that count.
func (f *ServiceDown) Record(ctx context.Context) (drill.FaultRecord, error) {
	n, err := f.replicas(ctx)
	if err != nil {
		return drill.FaultRecord{}, err
	}
	f.mu.Lock()
	if f.saved == nil {
		f.saved = &n
	}
	n = *f.saved
	f.mu.Unlock()
	return drill.FaultRecord{Kind: drill.RecordService, What: fmt.Sprintf("service %s at %s scaled to 0 (from %d)", f.Service, f.Site, n),
		Sites: []string{f.Site}, Site: f.Site, Service: f.Service, Replicas: &n}, nil
}

// ServiceDownFrom is the fault a record describes, ready for Remove: the service
// scaled back to the recorded replica count.
func ServiceDownFrom(r drill.FaultRecord, e Engine) (*ServiceDown, error) {
	if r.Kind != drill.RecordService || r.Service == "" || r.Replicas == nil {
		return nil, fmt.Errorf("record %q is not a complete service record (service %q, replicas %v)", r.What, r.Service, r.Replicas)
	}
	n := *r.Replicas
	return &ServiceDown{Site: r.Site, Service: r.Service, Engine: e, saved: &n}, nil
}

// replicas reads the service's replica count, refusing a service db-down cannot
// stop and start again.
func (f *ServiceDown) replicas(ctx context.Context) (uint64, error) {
	svc, err := f.Engine.ServiceInspect(ctx, f.Service, client.ServiceInspectOptions{})
	if err != nil {
		return 0, fmt.Errorf("%s: inspect service %s: %w", f.Site, f.Service, err)
	}
	mode := svc.Service.Spec.Mode.Replicated
	if mode == nil || mode.Replicas == nil {
		return 0, fmt.Errorf("%s: service %s is not replicated: db-down scales a replicated service", f.Site, f.Service)
	}
	if *mode.Replicas == 0 {
		// Already down (an earlier drill that could not restore it?): a drill would
		// "restore" it to zero and call that healed.
		return 0, fmt.Errorf("%s: service %s already runs 0 replicas; scale it up first (docker service scale %s=1), or run sitectl drill heal if a drill left it so", f.Site, f.Service, f.Service)
	}
	return *mode.Replicas, nil
}

// Inject records the replica count, scales to zero and waits for no running task.
func (f *ServiceDown) Inject(ctx context.Context) error {
	f.mu.Lock()
	recorded := f.saved != nil
	f.mu.Unlock()
	var n uint64
	if !recorded {
		var err error
		if n, err = f.replicas(ctx); err != nil {
			return err
		}
	}
	f.mu.Lock()
	if f.saved == nil {
		f.saved = &n
	}
	f.mu.Unlock()
	if err := f.scale(ctx, 0); err != nil {
		return err
	}
	return f.wait(ctx, 0)
}

// Remove scales back to the recorded replica count and waits for them to run. It
// does nothing when Inject never read the service.
func (f *ServiceDown) Remove(ctx context.Context) error {
	f.mu.Lock()
	saved := f.saved
	f.mu.Unlock()
	if saved == nil {
		return nil
	}
	if err := f.scale(ctx, *saved); err != nil {
		return err
	}
	return f.wait(ctx, *saved)
}

func (f *ServiceDown) scale(ctx context.Context, n uint64) error {
	svc, err := f.Engine.ServiceInspect(ctx, f.Service, client.ServiceInspectOptions{})
	if err != nil {
		return fmt.Errorf("%s: inspect service %s: %w", f.Site, f.Service, err)
	}
	spec := svc.Service.Spec
	if spec.Mode.Replicated == nil {
		return fmt.Errorf("%s: service %s is not replicated", f.Site, f.Service)
	}
	if spec.Mode.Replicated.Replicas != nil && *spec.Mode.Replicated.Replicas == n {
		return nil
	}
	spec.Mode.Replicated.Replicas = &n
	if _, err := f.Engine.ServiceUpdate(ctx, svc.Service.ID, client.ServiceUpdateOptions{Version: svc.Service.Version, Spec: spec}); err != nil {
		return fmt.Errorf("%s: scale %s to %d: %w", f.Site, f.Service, n, err)
	}
	return nil
}

func (f *ServiceDown) wait(ctx context.Context, n uint64) error {
	for {
		// Down means every container stopped, including those swarm is still
		// shutting down (their desired state changes at once, the container's
		// state only once it exited): until then the database takes writes.
		running, err := runningTasks(ctx, f.Engine, f.Service, n == 0)
		if err != nil {
			return fmt.Errorf("%s: tasks of %s: %w", f.Site, f.Service, err)
		}
		if uint64(len(running)) == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s has %d running task(s), want %d: %w", f.Site, f.Service, len(running), n, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// downNodes returns the IDs of the nodes swarm sees as down: their tasks keep the
// state they last reported (running) until swarm gives up on them, hours later, so
// a wait for them to stop would never end.
func downNodes(ctx context.Context, e Engine) (map[string]bool, error) {
	res, err := e.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return nil, err
	}
	down := map[string]bool{}
	for _, n := range res.Items {
		if n.Status.State == swarm.NodeStateDown {
			down[n.ID] = true
		}
	}
	return down, nil
}

// mayRun reports whether the task may have a container running: from assigned to
// a node until it reached a terminal state (a task swarm reports "starting" may
// already serve).
func mayRun(t swarm.Task) bool {
	switch t.Status.State {
	case swarm.TaskStateAssigned, swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady, swarm.TaskStateStarting, swarm.TaskStateRunning:
		return true
	}
	return false
}

// runningTasks lists the service's tasks in state running that swarm wants
// running; with stopping, every task that may still have a container running,
// whatever swarm wants of it (one being shut down still serves).
func runningTasks(ctx context.Context, e Engine, service string, stopping bool) ([]swarm.Task, error) {
	f := make(client.Filters).Add("service", service)
	if stopping {
		return liveTasks(ctx, e, f)
	}
	res, err := e.TaskList(ctx, client.TaskListOptions{Filters: f.Add("desired-state", "running")})
	if err != nil {
		return nil, err
	}
	var out []swarm.Task
	for _, t := range res.Items {
		if t.Status.State == swarm.TaskStateRunning {
			out = append(out, t)
		}
	}
	return out, nil
}

// liveTasks lists the tasks matching f that may still have a container running,
// leaving out those on nodes swarm sees as down (they report nothing more).
func liveTasks(ctx context.Context, e Engine, f client.Filters) ([]swarm.Task, error) {
	res, err := e.TaskList(ctx, client.TaskListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	down, err := downNodes(ctx, e)
	if err != nil {
		return nil, err
	}
	var out []swarm.Task
	for _, t := range res.Items {
		if mayRun(t) && !down[t.NodeID] {
			out = append(out, t)
		}
	}
	return out, nil
}

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

// Services probes a site's services while the faults are in place: each replicated
// service should run all its replicas (away from Avoid, a drained node, when set).
type Services struct {
	Site   string
	Engine Engine
	Avoid  string // node hostname tasks must have left
	// Except is the service a fault stops on purpose (db-down's database): it is not
	// expected to keep running, and the drill's write observations cover it.
	Except string
	// Required makes a service that is not fully running fail the drill.
	Required bool
	// Settle is how long to wait for services to reschedule before reporting,
	// when Observe's context has no deadline (in a drill it reads until the fault
	// window closes).
	Settle time.Duration
}

var _ drill.Probe = (*Services)(nil)

// Observe reports one observation per service.
//
// In a drill ctx ends when the fault window closes: the probe reads until then and
// reports its last read, what still ran as the fault ended (a service whose health
// check needs the stopped database fails only after its retries). A read is not cut
// off by the window's end (a loaded manager can take seconds to list the tasks);
// the probe starts no read it does not expect to finish in the window, judging by
// the last one. SIGINT (ctx cancelled, not past its deadline) stops a read at once.
// Without a deadline it reads until everything runs or Settle passed.
func (p *Services) Observe(ctx context.Context) []drill.Observation {
	end, windowed := ctx.Deadline()
	if !windowed {
		end = time.Now().Add(p.Settle)
	}
	for {
		t0 := time.Now()
		rctx, cancel := readContext(ctx)
		obs, allOK := p.observe(rctx)
		cancel()
		took := time.Since(t0)
		if errors.Is(ctx.Err(), context.Canceled) || (!windowed && allOK) || time.Now().Add(took+probeEvery).After(end) {
			return obs
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return obs
			}
		case <-time.After(probeEvery):
		}
	}
}

// probeEvery is how often a probe reads the services during the fault window;
// probeReadTimeout bounds one read.
const (
	probeEvery       = 500 * time.Millisecond
	probeReadTimeout = 15 * time.Second
)

// readContext is a context for one read that outlives ctx's deadline (bounded by
// probeReadTimeout) but not its cancellation.
func readContext(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeReadTimeout)
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	return rctx, func() { stop(); cancel() }
}

func (p *Services) observe(ctx context.Context) ([]drill.Observation, bool) {
	fail := func(err error) ([]drill.Observation, bool) {
		return []drill.Observation{{What: p.Site + " services", Detail: err.Error(), Required: p.Required}}, false
	}
	svcs, err := p.Engine.ServiceList(ctx, client.ServiceListOptions{})
	if err != nil {
		return fail(err)
	}
	avoidID := ""
	if p.Avoid != "" {
		n, err := FindNode(ctx, p.Engine, p.Avoid)
		if err != nil {
			return fail(err)
		}
		avoidID = n.ID
	}
	sort.Slice(svcs.Items, func(i, j int) bool { return svcs.Items[i].Spec.Name < svcs.Items[j].Spec.Name })
	var out []drill.Observation
	allOK := true
	for _, s := range svcs.Items {
		if p.Except != "" && (s.Spec.Name == p.Except || s.ID == p.Except) {
			continue
		}
		want := uint64(0)
		switch {
		case s.Spec.Mode.Replicated != nil && s.Spec.Mode.Replicated.Replicas != nil:
			want = *s.Spec.Mode.Replicated.Replicas
		default:
			continue // global services follow the nodes
		}
		running, err := runningTasks(ctx, p.Engine, s.Spec.Name, false)
		if err != nil {
			return fail(err)
		}
		onAvoided := 0
		for _, t := range running {
			if avoidID != "" && t.NodeID == avoidID {
				onAvoided++
			}
		}
		ok := uint64(len(running)-onAvoided) >= want
		allOK = allOK && ok
		detail := fmt.Sprintf("%d of %d replica(s) running", len(running)-onAvoided, want)
		if p.Avoid != "" {
			detail += fmt.Sprintf(" away from %s (%d still there)", p.Avoid, onAvoided)
		}
		if pl := s.Spec.TaskTemplate.Placement; !ok && pl != nil && len(pl.Constraints) > 0 {
			detail += "; placement: " + strings.Join(pl.Constraints, ", ")
		}
		out = append(out, drill.Observation{What: p.Site + ": " + s.Spec.Name + " keeps running", OK: ok, Detail: detail, Required: p.Required})
	}
	return out, allOK
}

// RunsOn reports whether a running task of service is on the node (hostname or ID).
func RunsOn(ctx context.Context, e Engine, service, node string) (bool, error) {
	n, err := FindNode(ctx, e, node)
	if err != nil {
		return false, err
	}
	running, err := runningTasks(ctx, e, service, false)
	if err != nil {
		return false, err
	}
	for _, t := range running {
		if t.NodeID == n.ID {
			return true, nil
		}
	}
	return false, nil
}
