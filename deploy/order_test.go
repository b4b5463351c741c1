package deploy

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/stacks"
)

// orderEngine logs the calls that matter to the order of service steps: each
// TaskList (a wait for a dependency; its tasks are starting) and each service
// create or update. Every other Engine method panics.
type orderEngine struct {
	Engine
	log []string
}

func (e *orderEngine) TaskList(context.Context, client.TaskListOptions) (client.TaskListResult, error) {
	e.log = append(e.log, "wait")
	return client.TaskListResult{Items: []swarm.Task{{Status: swarm.TaskStatus{State: swarm.TaskStateStarting}}}}, nil
}

func (e *orderEngine) ServiceCreate(_ context.Context, o client.ServiceCreateOptions) (client.ServiceCreateResult, error) {
	e.log = append(e.log, "create "+o.Spec.Name)
	return client.ServiceCreateResult{}, nil
}

func (e *orderEngine) ServiceUpdate(_ context.Context, id string, _ client.ServiceUpdateOptions) (client.ServiceUpdateResult, error) {
	e.log = append(e.log, "update "+id)
	return client.ServiceUpdateResult{}, nil
}

func (e *orderEngine) ServiceInspect(_ context.Context, id string, _ client.ServiceInspectOptions) (client.ServiceInspectResult, error) {
	return client.ServiceInspectResult{Service: swarm.Service{ID: id, Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: id, Labels: map[string]string{}}}}}, nil
}

// TestServiceOrder: a service is created after what it depends on has started, but
// with what it only rolls after; it rolls after both once they roll.
func TestServiceOrder(t *testing.T) {
	one := uint64(1)
	svc := func(name, task string, dependsOn, rollsAfter []string) stacks.Service {
		labels := stacks.ManagedLabels("douala", "x")
		labels[stacks.LabelTaskHash], labels[stacks.LabelSpecHash] = task, task
		spec := swarm.ServiceSpec{Annotations: swarm.Annotations{Name: name, Labels: labels},
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "busybox:" + task}},
			Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}}}
		return stacks.Service{Name: name, Spec: spec, Hash: task, DependsOn: dependsOn, RollsAfter: rollsAfter}
	}
	want := func(task string) *stacks.Desired {
		return &stacks.Desired{Services: []stacks.Service{
			svc("postgres_db", task, nil, nil),
			svc("django-api_api", task, nil, []string{"postgres_db"}),
			svc("x_worker", task, []string{"postgres_db"}, nil),
		}}
	}
	run := func(t *testing.T, d *stacks.Desired, l *live) (notes map[string]string, log string) {
		t.Helper()
		eng := &orderEngine{}
		s := waitSession(eng, &bytes.Buffer{})
		notes = map[string]string{}
		for _, st := range s.planServices(d, l) {
			notes[st.Name] = st.Note
			if err := st.Apply(context.Background()); err != nil {
				t.Fatalf("%s: %v", st, err)
			}
		}
		return notes, strings.Join(eng.log, ", ")
	}

	t.Run("created", func(t *testing.T) {
		notes, log := run(t, want("v1"), emptyLive())
		if want := "create postgres_db, create django-api_api, wait, create x_worker"; log != want {
			t.Errorf("calls: %s\nwant:  %s", log, want)
		}
		if notes["django-api_api"] != "" || !strings.Contains(notes["x_worker"], "created once postgres_db started") {
			t.Errorf("notes %q", notes)
		}
	})
	t.Run("rolled", func(t *testing.T) {
		l := emptyLive()
		for _, x := range want("v1").Services {
			l.services[x.Name] = swarm.Service{ID: x.Name, Spec: x.Spec}
		}
		notes, log := run(t, want("v2"), l)
		if want := "update postgres_db, wait, update django-api_api, wait, update x_worker"; log != want {
			t.Errorf("calls: %s\nwant:  %s", log, want)
		}
		for _, name := range []string{"django-api_api", "x_worker"} {
			if !strings.Contains(notes[name], "rolls once postgres_db started") {
				t.Errorf("%s: note %q, want it to say it rolls once postgres_db started", name, notes[name])
			}
		}
	})
	t.Run("only the dependent rolls", func(t *testing.T) {
		l := emptyLive()
		d := want("v1")
		for _, x := range d.Services {
			l.services[x.Name] = swarm.Service{ID: x.Name, Spec: x.Spec}
		}
		d.Services[1] = svc("django-api_api", "v2", nil, []string{"postgres_db"})
		notes, log := run(t, d, l)
		if log != "update django-api_api" || notes["django-api_api"] != "" {
			t.Errorf("calls %q, notes %q: want one update that waits for nothing", log, notes)
		}
	})
}
