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
	// extra is set when the service rolled back and the previous spec runs, but
	// swarm keeps more tasks running than desired (see nudgeAfter): how many.
	extra string
	// hold is how long err must be seen in a row before it is reported (a
	// rollback: until no restart of the failed task can still be on its way).
	hold time.Duration
}

// nudgeAfter is how long deploy lets swarm stop an extra task after a rollback
// before it re-applies the service's (rolled back) spec unchanged. A start-first
// rollback can race the restart of the failed task: swarm then runs two tasks of
// the previous spec in one slot and never reconciles them by itself (seen on
// 20.10); any service update makes its updater keep one and stop the other.
var nudgeAfter = 10 * time.Second

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
	defer s.opts.Progress.Settle(s.site.Name + ": ")
	extraSince, nudged, errSince := map[string]time.Time{}, map[string]bool{}, map[string]time.Time{}
	for {
		res, err := s.eng.ServiceList(ctx, client.ServiceListOptions{
			Filters: make(client.Filters).Add("label", stacks.LabelSite+"="+s.site.Name), Status: true})
		if err != nil {
			return fmt.Errorf("watch services: %w", err)
		}
		touched := s.touchedServices()
		// One task list per poll for the whole site, not one per service: the
		// engines are busiest exactly while deploy polls them.
		all, err := s.eng.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("_up-to-date", "true")})
		if err != nil {
			return fmt.Errorf("watch tasks: %w", err)
		}
		tasksOf := map[string][]swarm.Task{}
		for _, t := range all.Items {
			tasksOf[t.ServiceID] = append(tasksOf[t.ServiceID], t)
		}
		var pending []string
		for _, svc := range res.Items {
			name := svc.Spec.Name
			if !managedBy(svc.Spec.Labels, s.site.Name) || s.keep != nil && !s.keep(svc.Spec.Labels[stacks.LabelStack]) {
				continue
			}
			st, err := s.serviceState(ctx, svc, tasksOf[svc.ID], touched[name])
			if err != nil {
				return fmt.Errorf("watch service %s: %w", name, err)
			}
			s.opts.Progress.Status(s.site.Name+": "+name, st.status)
			if st.err == nil || st.hold == 0 {
				delete(errSince, name)
			} else if errSince[name].IsZero() {
				errSince[name] = time.Now()
			}
			if st.err != nil && time.Since(errSince[name]) < st.hold {
				pending = append(pending, name+" "+st.status)
				continue
			}
			if st.err != nil {
				if nudged[name] {
					return fmt.Errorf("service %s %w: %w (sitectl re-applied the rolled back spec once to stop an extra task swarm left running)", name, ErrNotConverged, st.err)
				}
				return fmt.Errorf("service %s %w: %w", name, ErrNotConverged, st.err)
			}
			if st.extra == "" {
				delete(extraSince, name)
			} else if extraSince[name].IsZero() {
				extraSince[name] = time.Now()
			} else if time.Since(extraSince[name]) > nudgeAfter && !nudged[name] {
				nudged[name] = true
				s.opts.Progress.Infof("%s: %s: swarm keeps %s after the rollback; re-applying its spec unchanged so swarm stops the extra task",
					s.site.Name, name, st.extra)
				if _, err := s.eng.ServiceUpdate(ctx, svc.ID, client.ServiceUpdateOptions{Version: svc.Version, Spec: svc.Spec}); err != nil {
					return fmt.Errorf("service %s %w: rolled back, and re-applying its spec to stop an extra task failed: %w", name, ErrNotConverged, err)
				}
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

// taskCounts is one poll's count of a service's up-to-date tasks.
type taskCounts struct {
	running, starting, noImage int
	desired                    int
	failedBy                   map[string]int // failed or rejected tasks of this deploy, by error
	lastErr                    string         // the most recent task error
	status                     string         // "1/2 running, 1 starting"
}

// countTasks counts the service's tasks; failures of tasks created before since
// (an earlier deploy's) are not counted.
func countTasks(svc swarm.Service, tasks []swarm.Task, since time.Time) taskCounts {
	c := taskCounts{failedBy: map[string]int{}}
	var lastAt time.Time
	for _, task := range tasks {
		if task.Status.Err != "" && !task.Status.Timestamp.Before(lastAt) {
			c.lastErr, lastAt = task.Status.Err, task.Status.Timestamp
		}
		switch {
		case task.DesiredState == swarm.TaskStateRunning && task.Status.State == swarm.TaskStateRunning:
			c.running++
		case task.DesiredState == swarm.TaskStateRunning && task.Status.State == swarm.TaskStateStarting:
			c.starting++
		case task.CreatedAt.Before(since):
			// an earlier deploy's task: its failure says nothing about this one
		case task.Status.State == swarm.TaskStateFailed || task.Status.State == swarm.TaskStateRejected:
			c.failedBy[task.Status.Err]++
			if isImageError(task.Status.Err) {
				c.noImage++
			}
		}
	}
	switch {
	case svc.ServiceStatus != nil:
		c.desired = int(svc.ServiceStatus.DesiredTasks)
	case svc.Spec.Mode.Replicated != nil && svc.Spec.Mode.Replicated.Replicas != nil:
		c.desired = int(*svc.Spec.Mode.Replicated.Replicas)
	}
	c.status = fmt.Sprintf("%d/%d running", c.running, c.desired)
	if c.starting > 0 {
		c.status += fmt.Sprintf(", %d starting", c.starting)
	}
	return c
}

// withErr adds the last task error to msg.
func (c taskCounts) withErr(msg string) string {
	if c.lastErr != "" {
		return msg + " (last task error: " + c.lastErr + ")"
	}
	return msg
}

// crashing reports that no task runs and they keep failing the same way (or the
// image is missing): swarm would retry forever.
func (c taskCounts) crashing() bool {
	return c.running == 0 && c.desired > 0 && (maxCount(c.failedBy) >= failedTasksLimit || c.noImage > 0)
}

// serviceState reads one poll's state of a service from its up-to-date tasks.
func (s *session) serviceState(ctx context.Context, svc swarm.Service, tasks []swarm.Task, t touch) (svcState, error) {
	c := countTasks(svc, tasks, t.since)
	status := c.status
	touchedNow := t.created || t.rolls || t.previous != ""
	if us := svc.UpdateStatus; us != nil {
		switch us.State {
		case swarm.UpdateStateRollbackCompleted:
			if touchedNow {
				return s.rolledBack(ctx, svc, c, "the update failed and swarm rolled it back to the previous spec")
			}
		case swarm.UpdateStatePaused:
			return svcState{status: "update paused", err: errors.New(c.withErr("update paused: " + us.Message))}, nil
		case swarm.UpdateStateRollbackPaused:
			return svcState{status: "rollback paused", err: errors.New(c.withErr("rollback paused: " + us.Message))}, nil
		case swarm.UpdateStateUpdating:
			return svcState{status: "updating, " + status}, nil
		case swarm.UpdateStateRollbackStarted:
			return svcState{status: "rolling back (" + us.Message + "), " + status}, nil
		}
	}
	// Swarm clears UpdateStatus when the service is updated again, so a reverted
	// spec is also caught by its hash: never report a service converged at a spec
	// sitectl did not apply.
	if have := svc.Spec.Labels[stacks.LabelSpecHash]; t.applied != "" && have != t.applied {
		if have == t.previous {
			return s.rolledBack(ctx, svc, c, "the update failed and swarm rolled it back to the previous spec")
		}
		return svcState{status: status, err: errors.New("the service was changed by someone else during the deploy (its spec is not the one sitectl applied); re-run the deploy")}, nil
	}
	if c.crashing() {
		return svcState{status: status, err: errors.New(c.withErr(fmt.Sprintf("%d tasks failed the same way and none runs", max(maxCount(c.failedBy), c.noImage))))}, nil
	}
	if t.rolls && (svc.UpdateStatus == nil || svc.UpdateStatus.State != swarm.UpdateStateCompleted) {
		return svcState{status: "update starting, " + status}, nil
	}
	if c.running < c.desired {
		if c.lastErr != "" {
			status += ": " + c.lastErr
		}
		return svcState{status: status}, nil
	}
	return svcState{done: true, status: status}, nil
}

// rolledBack reports a service whose update swarm undid: once the previous spec
// runs as before, as an error. Swarm may still be starting a task (a restart of
// the failed one, now at the previous spec) or stopping an extra one, and the
// operator's next command should find the site settled. A previous spec that
// cannot run either fails at once.
func (s *session) rolledBack(ctx context.Context, svc swarm.Service, c taskCounts, msg string) (svcState, error) {
	cause, err := s.lastTaskError(ctx, svc.ID)
	if err != nil {
		return svcState{}, err
	}
	if cause != "" {
		msg += "; failed task: " + cause
	}
	total := c.running
	if svc.ServiceStatus != nil {
		total = int(svc.ServiceStatus.RunningTasks)
	}
	if c.running >= c.desired && c.starting == 0 && total == c.desired {
		// Settled, if it stays so past the restart delay: a restart of the
		// failed task (at the previous spec now) may still be due.
		hold := 5 * time.Second // swarm's default restart delay
		if rp := svc.Spec.TaskTemplate.RestartPolicy; rp != nil && rp.Delay != nil {
			hold = *rp.Delay
		}
		return svcState{status: "rolled back, " + c.status, err: errors.New(msg), hold: hold + 2*time.Second}, nil
	}
	if c.crashing() {
		return svcState{status: "rolled back, " + c.status, err: errors.New(c.withErr(msg + "; the previous spec does not run either"))}, nil
	}
	var extra string
	if c.running >= c.desired && c.starting == 0 && total > c.desired {
		extra = fmt.Sprintf("%d tasks running for %d desired", total, c.desired)
	}
	return svcState{status: fmt.Sprintf("rolled back, settling: %s at the previous spec, %d running in all", c.status, total),
		extra: extra}, nil
}

func maxCount(m map[string]int) int {
	n := 0
	for _, v := range m {
		n = max(n, v)
	}
	return n
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
