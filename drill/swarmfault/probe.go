package swarmfault

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/drill"
)

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
