package swarmfault

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// killer is a node's engine: killing a container fails its task and, when
// replace, swarm starts a new one in its place.
type killer struct {
	s       *swarmState
	replace bool
	killed  []string
}

func (k *killer) ContainerKill(_ context.Context, id string, _ client.ContainerKillOptions) (client.ContainerKillResult, error) {
	k.s.mu.Lock()
	defer k.s.mu.Unlock()
	k.killed = append(k.killed, id)
	for i := range k.s.tasks {
		if cs := k.s.tasks[i].Status.ContainerStatus; cs != nil && cs.ContainerID == id {
			k.s.tasks[i].Status.State = swarm.TaskStateFailed
			k.s.tasks[i].DesiredState = swarm.TaskStateShutdown
		}
	}
	if k.replace {
		k.s.tasks = append(k.s.tasks, withContainer(task("t9", "n-ready", swarm.TaskStateRunning), "c9"))
	}
	return client.ContainerKillResult{}, nil
}

func withContainer(t swarm.Task, c string) swarm.Task {
	t.Status.ContainerStatus = &swarm.ContainerStatus{ContainerID: c}
	return t
}

// TestTaskKill: the first running task's container is killed on the node that
// runs it; Remove returns once swarm runs a new task in its place, and fails when
// swarm never replaces it.
func TestTaskKill(t *testing.T) {
	for _, replace := range []bool{true, false} {
		s := newSwarm(0, withContainer(task("t2", "n-ready", swarm.TaskStateRunning), "c2"),
			withContainer(task("t1", "n-ready", swarm.TaskStateRunning), "c1"))
		k := &killer{s: s, replace: replace}
		var host string
		f := &TaskKill{Site: "douala", Service: "django-api_api", Engine: s,
			NodeEngine: func(_ context.Context, h string) (KillEngine, error) { host = h; return k, nil }}
		rec, err := f.Record(context.Background())
		if err != nil || rec.Replicas == nil || *rec.Replicas != 2 || rec.Service != "django-api_api" {
			t.Fatalf("record %+v %v, want the service with 2 replicas", rec, err)
		}
		if err := f.Inject(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(k.killed) != 1 || k.killed[0] != "c1" || host != "db1" {
			t.Fatalf("killed %v on %q, want c1 (task t1, the first by ID) on db1", k.killed, host)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = f.Remove(ctx)
		cancel()
		switch {
		case replace && err != nil:
			t.Errorf("swarm replaced the task, Remove: %v", err)
		case !replace && (err == nil || !strings.Contains(err.Error(), "not replaced")):
			t.Errorf("swarm never replaced the task, Remove: %v, want an error saying so", err)
		}
	}
}
