package deploy

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/sites"
)

// taskEngine answers TaskList from a script, one answer per call (the last one
// repeats); every other Engine method panics (nil embedded interface). The wait for
// a dependency only lists tasks, and the lab test runs it against real swarms.
type taskEngine struct {
	Engine
	mu      sync.Mutex
	answers [][]swarm.TaskState
	calls   int
	filters []client.Filters
}

func (e *taskEngine) TaskList(_ context.Context, o client.TaskListOptions) (client.TaskListResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.filters = append(e.filters, o.Filters)
	a := e.answers[min(e.calls, len(e.answers)-1)]
	e.calls++
	var res client.TaskListResult
	for _, st := range a {
		res.Items = append(res.Items, swarm.Task{Status: swarm.TaskStatus{State: st}})
	}
	return res, nil
}

func waitSession(eng Engine, out *bytes.Buffer) *session {
	return newSession(&sites.Topology{}, &sites.Site{Name: "douala"}, eng, Options{Poll: time.Millisecond, Progress: progress.New(out)})
}

func TestAfterStarted(t *testing.T) {
	applied := func(n *int) func(context.Context) error {
		return func(context.Context) error { *n++; return nil }
	}
	t.Run("applies once the dependency's task starts", func(t *testing.T) {
		eng := &taskEngine{answers: [][]swarm.TaskState{
			nil, {swarm.TaskStatePending}, {swarm.TaskStateAssigned, swarm.TaskStatePreparing}, {swarm.TaskStateStarting},
		}}
		var out bytes.Buffer
		n := 0
		if err := waitSession(eng, &out).afterStarted("django-api_api", []string{"postgres_db"}, applied(&n))(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n != 1 || eng.calls != 4 {
			t.Errorf("applied %d times after %d task lists, want once after 4", n, eng.calls)
		}
		// Only the tasks of the spec this deploy applied count.
		f := eng.filters[0]
		if _, ok := f["service"]["postgres_db"]; !ok || len(f["_up-to-date"]) == 0 {
			t.Errorf("task filter %v, want service=postgres_db and _up-to-date", f)
		}
	})
	t.Run("a dependency that fails does not hold it", func(t *testing.T) {
		eng := &taskEngine{answers: [][]swarm.TaskState{{swarm.TaskStatePending}, {swarm.TaskStateRejected}}}
		var out bytes.Buffer
		n := 0
		if err := waitSession(eng, &out).afterStarted("django-api_api", []string{"postgres_db"}, applied(&n))(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n != 1 || !strings.Contains(out.String(), "postgres_db did not start (rejected); applying it anyway") {
			t.Errorf("applied %d times; output %q", n, out.String())
		}
	})
	t.Run("gives up waiting after startWait", func(t *testing.T) {
		defer func(d time.Duration) { startWait = d }(startWait)
		startWait = 20 * time.Millisecond
		eng := &taskEngine{answers: [][]swarm.TaskState{{swarm.TaskStatePending}}}
		var out bytes.Buffer
		n := 0
		if err := waitSession(eng, &out).afterStarted("django-api_api", []string{"postgres_db"}, applied(&n))(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n != 1 || eng.calls < 2 || !strings.Contains(out.String(), "postgres_db has not started after 20ms") {
			t.Errorf("applied %d times after %d lists; output %q", n, eng.calls, out.String())
		}
	})
	t.Run("cancelled while waiting: not applied", func(t *testing.T) {
		eng := &taskEngine{answers: [][]swarm.TaskState{{swarm.TaskStatePending}}}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		n := 0
		err := waitSession(eng, &bytes.Buffer{}).afterStarted("django-api_api", []string{"postgres_db"}, applied(&n))(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || n != 0 {
			t.Errorf("err = %v, applied %d times; want the context's error and no apply", err, n)
		}
	})
	t.Run("no dependencies: the apply itself", func(t *testing.T) {
		n := 0
		if err := waitSession(nil, &bytes.Buffer{}).afterStarted("kong_kong", nil, applied(&n))(context.Background()); err != nil || n != 1 {
			t.Errorf("err = %v, applied %d times", err, n)
		}
	})
}
