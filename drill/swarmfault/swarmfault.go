// Package swarmfault injects the swarm-level faults of the db-down and node-loss
// drills through the Docker Engine API of a site's manager — a service scaled to zero
// replicas, a node drained — and always puts back what was there. It also probes what
// keeps running while a fault is in place.
package swarmfault

import (
	"context"
	"fmt"
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
