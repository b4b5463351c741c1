package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/stacks"
)

// failedTasksLimit is how many failed tasks at the current spec with the same error,
// and none running, make a service fail without waiting for the timeout (a crash
// loop, a health check that never passes): swarm would retry forever. A missing
// image fails at the first task.
const failedTasksLimit = 2

// ErrNotConverged is wrapped by convergence failures (rolled back, paused, failing
// tasks, timeout).
var ErrNotConverged = errors.New("did not converge")

// waitConverged waits, once per run, until every sitectl service of the site runs
// its desired number of tasks at its current spec; a service that rolled back, whose
// update paused, whose tasks keep failing, or that is still not there after the
// site's deploy.timeout fails the run, naming the service and the reason.
func (s *session) waitConverged(ctx context.Context) error {
	s.waitOnce.Do(func() { s.waitErr = s.watch(ctx) })
	return s.waitErr
}

// svcState is one poll's view of a service.
type svcState struct {
	done   bool
	status string
	err    error
}

func (s *session) watch(ctx context.Context) error {
	timeout := s.site.Deploy.Timeout.D()
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	poll := s.opts.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	printed := map[string]string{}
	for {
		res, err := s.eng.ServiceList(ctx, client.ServiceListOptions{
			Filters: make(client.Filters).Add("label", stacks.LabelSite+"="+s.site.Name), Status: true})
		if err != nil {
			return fmt.Errorf("watch services: %w", err)
		}
		touched := s.touchedServices()
		var pending []string
		for _, svc := range res.Items {
			name := svc.Spec.Name
			if !managedBy(svc.Spec.Labels, s.site.Name) {
				continue
			}
			st, err := s.serviceState(ctx, svc, touched[name])
			if err != nil {
				return fmt.Errorf("watch service %s: %w", name, err)
			}
			if st.status != printed[name] {
				printed[name] = st.status
				s.opts.Progress.Infof("%s: %s %s", s.site.Name, name, st.status)
			}
			if st.err != nil {
				return fmt.Errorf("service %s %w: %w", name, ErrNotConverged, st.err)
			}
			if !st.done {
				pending = append(pending, name+" "+st.status)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within %s (deploy.timeout): %s", ErrNotConverged, timeout, strings.Join(pending, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

func (s *session) serviceState(ctx context.Context, svc swarm.Service, t touch) (svcState, error) {
	tasks, err := s.eng.TaskList(ctx, client.TaskListOptions{
		Filters: make(client.Filters).Add("service", svc.ID).Add("_up-to-date", "true")})
	if err != nil {
		return svcState{}, err
	}
	var running, starting, noImage int
	failedBy := map[string]int{}
	var lastErr string
	var lastAt time.Time
	for _, task := range tasks.Items {
		if task.Status.Err != "" && !task.Status.Timestamp.Before(lastAt) {
			lastErr, lastAt = task.Status.Err, task.Status.Timestamp
		}
		switch {
		case task.DesiredState == swarm.TaskStateRunning && task.Status.State == swarm.TaskStateRunning:
			running++
		case task.DesiredState == swarm.TaskStateRunning && task.Status.State == swarm.TaskStateStarting:
			starting++
		case task.Status.State == swarm.TaskStateFailed || task.Status.State == swarm.TaskStateRejected:
			failedBy[task.Status.Err]++
			if isImageError(task.Status.Err) {
				noImage++
			}
		}
	}
	desired := 0
	switch {
	case svc.ServiceStatus != nil:
		desired = int(svc.ServiceStatus.DesiredTasks)
	case svc.Spec.Mode.Replicated != nil && svc.Spec.Mode.Replicated.Replicas != nil:
		desired = int(*svc.Spec.Mode.Replicated.Replicas)
	}
	status := fmt.Sprintf("%d/%d running", running, desired)
	if starting > 0 {
		status += fmt.Sprintf(", %d starting", starting)
	}
	withErr := func(msg string) string {
		if lastErr != "" {
			return msg + " (last task error: " + lastErr + ")"
		}
		return msg
	}
	touchedNow := t.created || t.rolls || t.previous != ""
	if us := svc.UpdateStatus; us != nil {
		switch us.State {
		case swarm.UpdateStateRollbackCompleted:
			if touchedNow {
				cause, err := s.lastTaskError(ctx, svc.ID)
				if err != nil {
					return svcState{}, err
				}
				msg := "the update failed and swarm rolled it back to the previous spec"
				if cause != "" {
					msg += "; failed task: " + cause
				}
				return svcState{status: "rolled back", err: errors.New(msg)}, nil
			}
		case swarm.UpdateStatePaused:
			return svcState{status: "update paused", err: errors.New(withErr("update paused: " + us.Message))}, nil
		case swarm.UpdateStateRollbackPaused:
			return svcState{status: "rollback paused", err: errors.New(withErr("rollback paused: " + us.Message))}, nil
		case swarm.UpdateStateUpdating:
			return svcState{status: "updating, " + status}, nil
		case swarm.UpdateStateRollbackStarted:
			return svcState{status: "rolling back (" + us.Message + "), " + status}, nil
		}
	}
	failed := 0
	for _, n := range failedBy {
		failed = max(failed, n)
	}
	if running == 0 && desired > 0 && (failed >= failedTasksLimit || noImage > 0) {
		return svcState{status: status, err: errors.New(withErr(fmt.Sprintf("%d tasks failed the same way and none runs", max(failed, noImage))))}, nil
	}
	if t.rolls && (svc.UpdateStatus == nil || svc.UpdateStatus.State != swarm.UpdateStateCompleted) {
		return svcState{status: "update starting, " + status}, nil
	}
	if running < desired {
		if lastErr != "" {
			status += ": " + lastErr
		}
		return svcState{status: status}, nil
	}
	return svcState{done: true, status: status}, nil
}

// isImageError reports a task error no retry fixes: the engine has no such image and
// cannot pull it.
func isImageError(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "no such image") || strings.Contains(m, "pull access denied") || strings.Contains(m, "manifest unknown")
}

// lastTaskError is the most recent error of any task of the service (the updated
// tasks that failed are no longer "up to date" once swarm rolled back).
func (s *session) lastTaskError(ctx context.Context, serviceID string) (string, error) {
	tasks, err := s.eng.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", serviceID)})
	if err != nil {
		return "", err
	}
	var msg string
	var at time.Time
	for _, t := range tasks.Items {
		if t.Status.Err != "" && t.Status.Timestamp.After(at) {
			msg, at = t.Status.Err, t.Status.Timestamp
		}
	}
	return msg, nil
}
