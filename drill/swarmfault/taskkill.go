package swarmfault

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/drill"
)

// KillEngine is the part of a node's Docker API TaskKill uses to kill a task's
// container; *client.Client has it.
type KillEngine interface {
	ContainerKill(ctx context.Context, containerID string, options client.ContainerKillOptions) (client.ContainerKillResult, error)
}

// TaskKill kills the container of one running task of a replicated service (the
// API, in the api-kill drill) on the node that runs it, as a crashed process would
// end, and proves swarm replaces it: Remove waits until the service runs its
// replica count again with a new task in place of the killed one. Nothing is
// scaled: swarm's restart policy does the healing; a record left by a killed drill
// scales the service to the replica count it had (which changes nothing when swarm
// already replaced the task).
type TaskKill struct {
	Site    string
	Service string // full service name, e.g. django-api_api
	Engine  Engine
	// NodeEngine opens the Docker API of a swarm node by its hostname.
	NodeEngine func(ctx context.Context, hostname string) (KillEngine, error)

	mu     sync.Mutex
	saved  *uint64 // replicas before Inject
	killed string  // the killed task's ID
	node   string  // the node it ran on
}

var (
	_ drill.Fault      = (*TaskKill)(nil)
	_ drill.Recordable = (*TaskKill)(nil)
)

// Name is "a task of django-api_api at douala".
func (f *TaskKill) Name() string { return "a task of " + f.Service + " at " + f.Site }

// Events are down / restore.
func (f *TaskKill) Events() (string, string) { return drill.EvDown, drill.EvRestore }

// Manual is what puts the service back by hand when swarm does not.
func (f *TaskKill) Manual() string {
	n := uint64(1)
	f.mu.Lock()
	if f.saved != nil {
		n = *f.saved
	}
	f.mu.Unlock()
	return fmt.Sprintf("docker service ps %s; docker service update --force %s (on %s's manager; it should run %d task(s))", f.Service, f.Service, f.Site, n)
}

// Record reads the service's replica count and describes the fault for the
// drill's journal.
func (f *TaskKill) Record(ctx context.Context) (drill.FaultRecord, error) {
	n, err := f.replicas(ctx)
	if err != nil {
		return drill.FaultRecord{}, err
	}
	return drill.FaultRecord{Kind: drill.RecordService, What: fmt.Sprintf("a task of service %s at %s killed (it runs %d)", f.Service, f.Site, n),
		Sites: []string{f.Site}, Site: f.Site, Service: f.Service, Replicas: &n}, nil
}

func (f *TaskKill) replicas(ctx context.Context) (uint64, error) {
	f.mu.Lock()
	if f.saved != nil {
		defer f.mu.Unlock()
		return *f.saved, nil
	}
	f.mu.Unlock()
	svc, err := f.Engine.ServiceInspect(ctx, f.Service, client.ServiceInspectOptions{})
	if err != nil {
		return 0, fmt.Errorf("%s: inspect service %s: %w", f.Site, f.Service, err)
	}
	mode := svc.Service.Spec.Mode.Replicated
	if mode == nil || mode.Replicas == nil || *mode.Replicas == 0 {
		return 0, fmt.Errorf("%s: service %s runs no replicated task to kill", f.Site, f.Service)
	}
	n := *mode.Replicas
	f.mu.Lock()
	f.saved = &n
	f.mu.Unlock()
	return n, nil
}

// Inject kills the container of the service's first running task (by task ID)
// and waits until swarm sees that task stopped.
func (f *TaskKill) Inject(ctx context.Context) error {
	if _, err := f.replicas(ctx); err != nil {
		return err
	}
	running, err := runningTasks(ctx, f.Engine, f.Service, false)
	if err != nil {
		return fmt.Errorf("%s: tasks of %s: %w", f.Site, f.Service, err)
	}
	if len(running) == 0 {
		return fmt.Errorf("%s: service %s has no running task to kill", f.Site, f.Service)
	}
	slices.SortFunc(running, func(a, b swarm.Task) int { return strings.Compare(a.ID, b.ID) })
	t := running[0]
	if t.Status.ContainerStatus == nil || t.Status.ContainerStatus.ContainerID == "" {
		return fmt.Errorf("%s: task %s of %s reports no container", f.Site, t.ID, f.Service)
	}
	node, err := f.Engine.NodeInspect(ctx, t.NodeID, client.NodeInspectOptions{})
	if err != nil {
		return fmt.Errorf("%s: inspect the node of task %s: %w", f.Site, t.ID, err)
	}
	host := node.Node.Description.Hostname
	ke, err := f.NodeEngine(ctx, host)
	if err != nil {
		return fmt.Errorf("%s: engine of node %s (it runs task %s of %s): %w", f.Site, host, t.ID, f.Service, err)
	}
	f.mu.Lock()
	f.killed, f.node = t.ID, host
	f.mu.Unlock()
	if _, err := ke.ContainerKill(ctx, t.Status.ContainerStatus.ContainerID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("%s: kill the container of task %s of %s on %s: %w", f.Site, t.ID, f.Service, host, err)
	}
	for {
		res, err := f.Engine.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", f.Service)})
		if err == nil && !slices.ContainsFunc(res.Items, func(x swarm.Task) bool { return x.ID == t.ID && x.Status.State == swarm.TaskStateRunning }) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: task %s of %s still reported running after its container was killed: %w", f.Site, t.ID, f.Service, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Remove waits until swarm runs the service's replica count again, none of them
// the killed task. It does nothing when Inject killed nothing.
func (f *TaskKill) Remove(ctx context.Context) error {
	f.mu.Lock()
	saved, killed := f.saved, f.killed
	f.mu.Unlock()
	if saved == nil || killed == "" {
		return nil
	}
	for {
		running, err := runningTasks(ctx, f.Engine, f.Service, false)
		n := uint64(0)
		for _, t := range running {
			if t.ID != killed {
				n++
			}
		}
		if err == nil && n >= *saved {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: swarm has not replaced the killed task of %s: %d of %d running: %w", f.Site, f.Service, n, *saved, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Killed names the killed task and its node ("" before Inject).
func (f *TaskKill) Killed() (task, node string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.killed, f.node
}
