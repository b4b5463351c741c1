package swarmfault

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// swarmState answers the Engine calls the faults make from an in-memory swarm of
// one replicated service: scaling it marks its tasks for shutdown, and a task on a
// ready node reaches "shutdown" after stopAfter more task lists (its container
// stopping); a task on a down node keeps the state it last reported, as swarm does.
// Every other Engine method panics (nil embedded interface). The faults themselves
// run against real swarms in drill/live's lab tests; this covers the node states a
// lab cannot produce in seconds.
type swarmState struct {
	Engine
	mu        sync.Mutex
	replicas  uint64
	nodes     []swarm.Node
	tasks     []swarm.Task
	stopAfter int
	lists     int
	stopping  map[string]int // task ID → task lists since its shutdown was asked
	// startAfter is how many task lists a task swarm places on a node made active
	// again takes to run (its container starting, its health check passing).
	startAfter int
	starting   map[string]int // task ID → task lists since it was placed
}

func (s *swarmState) ServiceInspect(context.Context, string, client.ServiceInspectOptions) (client.ServiceInspectResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.replicas
	return client.ServiceInspectResult{Service: swarm.Service{ID: "svc", Spec: swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "postgres_db"},
		Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}},
	}}}, nil
}

func (s *swarmState) ServiceUpdate(_ context.Context, _ string, o client.ServiceUpdateOptions) (client.ServiceUpdateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicas = *o.Spec.Mode.Replicated.Replicas
	if s.replicas == 0 {
		s.shutdown(func(swarm.Task) bool { return true })
	}
	return client.ServiceUpdateResult{}, nil
}

func (s *swarmState) NodeList(context.Context, client.NodeListOptions) (client.NodeListResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return client.NodeListResult{Items: append([]swarm.Node(nil), s.nodes...)}, nil
}

func (s *swarmState) NodeInspect(_ context.Context, id string, _ client.NodeInspectOptions) (client.NodeInspectResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nodes {
		if n.ID == id {
			return client.NodeInspectResult{Node: n}, nil
		}
	}
	panic("no node " + id)
}

func (s *swarmState) NodeUpdate(_ context.Context, id string, o client.NodeUpdateOptions) (client.NodeUpdateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.nodes {
		if s.nodes[i].ID == id {
			s.nodes[i].Spec = o.Spec
		}
	}
	if o.Spec.Availability == swarm.NodeAvailabilityDrain {
		s.shutdown(func(t swarm.Task) bool { return t.NodeID == id })
	}
	if o.Spec.Availability == swarm.NodeAvailabilityActive {
		// The service is pinned to the node: its task waits there until the node
		// takes tasks again.
		t := task(fmt.Sprintf("t%d", len(s.tasks)+1), id, swarm.TaskStatePending)
		s.tasks = append(s.tasks, t)
		s.starting[t.ID] = 0
	}
	return client.NodeUpdateResult{}, nil
}

func (s *swarmState) TaskList(_ context.Context, o client.TaskListOptions) (client.TaskListResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists++
	for i := range s.tasks {
		t := &s.tasks[i]
		if n, ok := s.stopping[t.ID]; ok && !s.down(t.NodeID) {
			if n >= s.stopAfter {
				t.Status.State = swarm.TaskStateShutdown
			}
			s.stopping[t.ID] = n + 1
		}
		if n, ok := s.starting[t.ID]; ok {
			if n >= s.startAfter {
				t.Status.State = swarm.TaskStateRunning
			}
			s.starting[t.ID] = n + 1
		}
	}
	var res client.TaskListResult
	for _, t := range s.tasks {
		if o.Filters["desired-state"]["running"] && t.DesiredState != swarm.TaskStateRunning {
			continue
		}
		if nodes := o.Filters["node"]; len(nodes) > 0 && !nodes[t.NodeID] {
			continue
		}
		res.Items = append(res.Items, t)
	}
	return res, nil
}

func (s *swarmState) shutdown(which func(swarm.Task) bool) {
	for i := range s.tasks {
		if which(s.tasks[i]) {
			s.tasks[i].DesiredState = swarm.TaskStateShutdown
			s.stopping[s.tasks[i].ID] = 0
		}
	}
}

func (s *swarmState) down(node string) bool {
	for _, n := range s.nodes {
		if n.ID == node {
			return n.Status.State == swarm.NodeStateDown
		}
	}
	return false
}

func newSwarm(stopAfter int, tasks ...swarm.Task) *swarmState {
	return &swarmState{
		replicas: uint64(len(tasks)), tasks: tasks, stopAfter: stopAfter, stopping: map[string]int{}, starting: map[string]int{},
		nodes: []swarm.Node{
			{ID: "n-ready", Description: swarm.NodeDescription{Hostname: "db1"}, Status: swarm.NodeStatus{State: swarm.NodeStateReady}},
			{ID: "n-down", Description: swarm.NodeDescription{Hostname: "db2"}, Status: swarm.NodeStatus{State: swarm.NodeStateDown}},
		},
	}
}

func task(id, node string, state swarm.TaskState) swarm.Task {
	return swarm.Task{ID: id, ServiceID: "svc", NodeID: node, DesiredState: swarm.TaskStateRunning, Status: swarm.TaskStatus{State: state}}
}

func TestServiceDownWaitsForTheContainerToStop(t *testing.T) {
	cases := []struct {
		name      string
		tasks     []swarm.Task
		minLists  int // task lists Inject must have made before returning
		stopAfter int
	}{
		// Swarm changes the desired state at once; the container serves until it
		// stopped (PostgreSQL takes writes while it shuts down).
		{"running task on a ready node", []swarm.Task{task("t1", "n-ready", swarm.TaskStateRunning)}, 4, 3},
		// A task still starting (health check pending) may already serve.
		{"starting task on a ready node", []swarm.Task{task("t1", "n-ready", swarm.TaskStateStarting)}, 4, 3},
		// A node that is down reports nothing more: its task stays "running" for
		// hours, and the wait must not hang on it.
		{"task on a down node", []swarm.Task{task("t1", "n-down", swarm.TaskStateRunning)}, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSwarm(c.stopAfter, c.tasks...)
			if err := inject(&ServiceDown{Site: "douala", Service: "postgres_db", Engine: s}); err != nil {
				t.Fatal(err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.replicas != 0 {
				t.Errorf("replicas %d after Inject, want 0", s.replicas)
			}
			if s.lists < c.minLists {
				t.Errorf("Inject returned after %d task list(s): the container had not stopped yet (it needs %d)", s.lists, c.minLists)
			}
		})
	}
}

// inject runs f.Inject with a deadline, so a wait that never ends fails the test.
func inject(f interface{ Inject(context.Context) error }) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.Inject(ctx)
}

func TestNodeDrainWaitsForTheNodesTasks(t *testing.T) {
	t.Run("ready node", func(t *testing.T) {
		s := newSwarm(3, task("t1", "n-ready", swarm.TaskStateRunning), task("t2", "n-down", swarm.TaskStateRunning))
		if err := inject(&NodeDrain{Site: "douala", Node: "db1", Engine: s}); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.nodes[0].Spec.Availability != swarm.NodeAvailabilityDrain {
			t.Errorf("db1 availability %q, want drain", s.nodes[0].Spec.Availability)
		}
		if s.tasks[0].Status.State != swarm.TaskStateShutdown {
			t.Errorf("Inject returned while db1's task was still %s", s.tasks[0].Status.State)
		}
	})
	t.Run("node already down", func(t *testing.T) {
		s := newSwarm(0, task("t2", "n-down", swarm.TaskStateRunning))
		if err := inject(&NodeDrain{Site: "douala", Node: "db2", Engine: s}); err != nil {
			t.Fatalf("draining a node that is down: %v", err)
		}
	})
}

// TestNodeDrainRemoveWaitsForItsServices: a node made active again is healed once
// the services that ran there run again, not when swarm was told (a resync right
// after found the database pinned to the node still starting: connection refused).
func TestNodeDrainRemoveWaitsForItsServices(t *testing.T) {
	drained := func(t *testing.T, startAfter int) (*swarmState, *NodeDrain) {
		s := newSwarm(0, task("t1", "n-ready", swarm.TaskStateRunning))
		s.startAfter = startAfter
		d := &NodeDrain{Site: "douala", Node: "db1", Engine: s}
		if err := inject(d); err != nil {
			t.Fatal(err)
		}
		return s, d
	}
	t.Run("task starts", func(t *testing.T) {
		s, d := drained(t, 3)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.nodes[0].Spec.Availability != swarm.NodeAvailabilityActive {
			t.Errorf("db1 availability %q, want active", s.nodes[0].Spec.Availability)
		}
		last := s.tasks[len(s.tasks)-1]
		if last.NodeID != "n-ready" || last.Status.State != swarm.TaskStateRunning {
			t.Errorf("Remove returned while the service's task on db1 was %s", last.Status.State)
		}
	})
	t.Run("task never starts", func(t *testing.T) {
		_, d := drained(t, 1<<30)
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		err := d.Remove(ctx)
		if err == nil || !strings.Contains(err.Error(), "postgres_db runs 0 of 1 task(s)") {
			t.Fatalf("Remove with the task never running: %v, want an error naming postgres_db and its tasks", err)
		}
	})
	t.Run("from the journal", func(t *testing.T) {
		s, d := drained(t, 2)
		r, err := d.Record(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Services) != 1 || r.Services[0] != "svc" {
			t.Fatalf("record services %v, want [svc]", r.Services)
		}
		left, err := NodeDrainFrom(r, s)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := left.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if last := s.tasks[len(s.tasks)-1]; last.Status.State != swarm.TaskStateRunning {
			t.Errorf("drill heal's Remove returned while the task was %s", last.Status.State)
		}
	})
}

// slowManager is a manager that takes 300ms to list its services (a loaded lab).
type slowManager struct{ *swarmState }

func (s slowManager) ServiceList(ctx context.Context, _ client.ServiceListOptions) (client.ServiceListResult, error) {
	select {
	case <-ctx.Done():
		return client.ServiceListResult{}, ctx.Err()
	case <-time.After(300 * time.Millisecond):
	}
	n := uint64(1)
	return client.ServiceListResult{Items: []swarm.Service{{ID: "svc", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "api"},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}}}}}}, nil
}

// TestServicesProbeInAShortWindow: the fault window closing in the middle of a slow
// read does not turn the read into "context deadline exceeded": the read finishes
// and reports what ran; SIGINT stops it at once.
func TestServicesProbeInAShortWindow(t *testing.T) {
	m := slowManager{newSwarm(0, task("t1", "n-ready", swarm.TaskStateRunning))}
	p := &Services{Site: "douala", Engine: m, Required: true}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	obs := p.Observe(ctx)
	if len(obs) != 1 || !obs[0].OK || obs[0].What != "douala: api keeps running" {
		t.Fatalf("observations %+v, want the api running", obs)
	}
	ictx, interrupt := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, interrupt)
	// The read is cancelled, not finished: a finished one would say the api runs.
	obs = p.Observe(ictx)
	if len(obs) != 1 || obs[0].OK || !strings.Contains(obs[0].Detail, "context canceled") {
		t.Fatalf("interrupted probe returned %+v, want the cancelled read", obs)
	}
}
