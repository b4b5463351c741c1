package deploy

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// Component names of the steps this part plans.
const (
	ComponentNetwork plan.Component = "network"
	ComponentSecret  plan.Component = "secret"
	ComponentConfig  plan.Component = "config"
	ComponentService plan.Component = "service"
	// ComponentPrune is the step that says what pruning kept.
	ComponentPrune plan.Component = "prune"
)

// Stacks is the part that brings a site's networks, secrets, configs and services
// to what its stacks want. Deploy waits for its services to converge before the
// next part.
var Stacks plan.Part = stacksPart{}

type stacksPart struct{}

func (stacksPart) Name() string { return "stacks" }

func (p stacksPart) Plan(ctx context.Context, topo *sites.Topology, site *sites.Site) (steps []plan.Step, err error) {
	err = withOwnSession(ctx, topo, site, func(s *session) error {
		steps, err = p.planSession(ctx, s)
		return err
	})
	return steps, err
}

// Wait blocks until the site's services converged (or one failed).
func (p stacksPart) Wait(ctx context.Context, topo *sites.Topology, site *sites.Site) error {
	return withOwnSession(ctx, topo, site, func(s *session) error { return p.waitSession(ctx, s) })
}

// planSession plans the built-in stacks and the site networks (with opts.Stacks,
// those of them it names), and prunes stacks no longer configured: apps have their
// own groups (the apps part).
func (stacksPart) planSession(ctx context.Context, s *session) ([]plan.Step, error) {
	s.keep = func(stack string) bool {
		if stack == stacks.SiteStack {
			return true
		}
		return s.topo.App(stack) == nil && (len(s.opts.Stacks) == 0 || slices.Contains(s.opts.Stacks, stack))
	}
	return s.planStacks(ctx)
}

func (stacksPart) waitSession(ctx context.Context, s *session) error {
	return s.waitConverged(ctx)
}

func (s *session) planStacks(ctx context.Context) ([]plan.Step, error) {
	active, cluster, err := s.cachedSwarm(ctx)
	if err != nil {
		return nil, err
	}
	if active {
		// The lists travel while the stacks render; no list outlives this plan.
		defer func(done <-chan struct{}) { <-done }(s.prefetchLive(ctx))
	}
	key := []byte(cluster)
	if cluster == "" {
		// No swarm yet: its cluster ID, the key of the content hashes, is unknown.
		// A random key keeps a plain hash of a secret value out of the plan (which CI
		// keeps as an artifact); deploy re-plans once the swarm exists.
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	d, err := s.built.get(cluster, func() (*stacks.Desired, error) {
		return stacks.Build(ctx, stacks.Input{Topo: s.topo, Site: s.site}, stacks.ConvertOptions{Environment: s.opts.environment(), Key: key})
	})
	if err != nil {
		return nil, err
	}
	l := emptyLive()
	if active {
		if l, err = s.cachedLive(ctx); err != nil {
			return nil, err
		}
	}
	if s.keep != nil {
		filterStacks(d, l, s.keep)
	}
	var steps []plan.Step
	steps = append(steps, s.planNetworks(d, l)...)
	steps = append(steps, s.planObjects(ComponentSecret, d.Secrets, l.secrets)...)
	steps = append(steps, s.planObjects(ComponentConfig, d.Configs, l.configs)...)
	steps = append(steps, s.planServices(d, l)...)
	steps = append(steps, s.planPrune(d, l)...)
	if cluster == "" {
		// The version suffixes above come from a random key: name the objects without
		// them, so two plans of the site say the same (deploy --plan compares them).
		logical := map[string]string{}
		for _, o := range append(slices.Clone(d.Secrets), d.Configs...) {
			logical[o.Name] = o.Logical
		}
		for i, st := range steps {
			if l, ok := logical[st.Name]; ok && (st.Component == ComponentSecret || st.Component == ComponentConfig) {
				steps[i].Name = l + "_<version>"
			}
		}
	}
	if !active && len(steps) > 0 {
		steps[0].Note = plan.JoinNotes(steps[0].Note, noSwarmNote)
	}
	return steps, nil
}

// noSwarmNote is the note on a site's first stacks step before its swarm exists.
const noSwarmNote = "the swarm is not initialized yet: secrets and configs get their version suffix once it is"

func (s *session) step(component plan.Component, action plan.Action, name string) plan.Step {
	return plan.Step{Site: s.site.Name, Component: component, Action: action, Name: name}
}

// planNetworks creates missing networks and recreates those whose immutable
// settings (subnet, encryption, attachable, internal) differ from the config.
func (s *session) planNetworks(d *stacks.Desired, l *live) []plan.Step {
	var steps []plan.Step
	for _, n := range d.Networks {
		want := networkView(n.Create.Driver, n.Create.IPAM, n.Create.Options, n.Create.Attachable, n.Create.Internal)
		cur, ok := l.networks[n.Name]
		if !ok {
			st := s.step(ComponentNetwork, plan.Create, n.Name)
			st.Diff = []string{want.String()}
			st.Note = n.Note
			st.Apply = s.createNetwork(n)
			steps = append(steps, st)
			continue
		}
		have := networkView(cur.Driver, &cur.IPAM, cur.Options, cur.Attachable, cur.Internal)
		if want.subnet == "" {
			have.subnet = "" // the engine picked one; any is fine
		}
		if have == want {
			continue
		}
		st := s.step(ComponentNetwork, plan.Update, n.Name)
		st.Diff = have.diff(want)
		st.Note = plan.JoinNotes("networks are immutable: sitectl removes and recreates it (services attached to it must be gone first)", n.Note)
		create := s.createNetwork(n)
		id := cur.ID
		st.Apply = func(ctx context.Context) error {
			if _, err := s.eng.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil {
				return fmt.Errorf("remove network %s to recreate it: %w (remove the services attached to it first)", n.Name, err)
			}
			return create(ctx)
		}
		steps = append(steps, st)
	}
	return steps
}

func (s *session) createNetwork(n stacks.Network) func(context.Context) error {
	return func(ctx context.Context) error {
		o := n.Create
		o.Scope = "swarm"
		if _, err := s.eng.NetworkCreate(ctx, n.Name, o); err != nil {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
		return nil
	}
}

// planObjects creates the secret or config versions the stacks want that the swarm
// does not hold yet. Removal of old versions is planned by planPrune.
func (s *session) planObjects(component plan.Component, want []stacks.Object, have []liveObj) []plan.Step {
	byName := map[string]liveObj{}
	for _, o := range have {
		byName[o.Name] = o
	}
	var steps []plan.Step
	for _, o := range want {
		if _, ok := byName[o.Name]; ok {
			continue
		}
		st := s.step(component, plan.Create, o.Name)
		st.Diff = []string{"from " + o.Source}
		for _, h := range have {
			if h.Labels[stacks.LabelObject] == o.Logical && managedBy(h.Labels, s.site.Name) {
				st.Note = "new version of " + o.Logical + ": the services using it roll"
			}
		}
		obj := o
		st.Apply = func(ctx context.Context) error {
			var err error
			if component == ComponentSecret {
				_, err = s.eng.SecretCreate(ctx, client.SecretCreateOptions{Spec: swarm.SecretSpec{
					Annotations: swarm.Annotations{Name: obj.Name, Labels: obj.Labels}, Data: obj.Data, Templating: obj.Templating}})
			} else {
				_, err = s.eng.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: swarm.ConfigSpec{
					Annotations: swarm.Annotations{Name: obj.Name, Labels: obj.Labels}, Data: obj.Data, Templating: obj.Templating}})
			}
			if err != nil && !isConflict(err) {
				return fmt.Errorf("create %s %s: %w", component, obj.Name, err)
			}
			return nil
		}
		steps = append(steps, st)
	}
	return steps
}

// planServices creates missing services and updates those whose spec hash label
// differs from the desired spec, or whose live spec drifted (changed by hand), or
// whose last update is paused. An unchanged service gets no step at all.
func (s *session) planServices(d *stacks.Desired, l *live) []plan.Step {
	var steps []plan.Step
	starting := map[string]bool{} // services whose tasks this plan (re)starts
	for _, svc := range d.Services {
		want := describe(svc.Spec, l.netName)
		cur, ok := l.services[svc.Name]
		if !ok {
			after := startsAfter(svc.DependsOn, starting)
			st := s.step(ComponentService, plan.Create, svc.Name)
			st.Diff = []string{"image " + want["image"]}
			if r, ok := want["replicas"]; ok {
				st.Diff = append(st.Diff, "replicas "+r)
			}
			if len(after) > 0 {
				st.Note = "created once " + strings.Join(after, ", ") + " started (depends on it)"
			}
			st.Apply = s.afterStarted(svc.Name, after, s.applyService(svc, ""))
			starting[svc.Name] = replicas(svc.Spec) != 0
			steps = append(steps, st)
			continue
		}
		have := describe(cur.Spec, l.netName)
		var note []string
		var diff []string
		switch {
		case cur.Spec.Labels[stacks.LabelSpecHash] != svc.Hash:
			diff = diffLines(have, want, nil)
			if len(diff) == 0 {
				diff = []string{fmt.Sprintf("spec: %s → %s", short(cur.Spec.Labels[stacks.LabelSpecHash]), short(svc.Hash))}
			}
		default:
			if diff = diffLines(have, want, isDriftKey); len(diff) > 0 {
				note = append(note, "changed outside sitectl; the update restores the configured spec")
			}
		}
		if !managedBy(cur.Spec.Labels, s.site.Name) {
			note = append(note, "created outside sitectl: the update takes it over")
		}
		if us := cur.UpdateStatus; us != nil {
			switch us.State {
			case swarm.UpdateStatePaused, swarm.UpdateStateRollbackPaused:
				note = append(note, fmt.Sprintf("its last update is %s: %s", us.State, us.Message))
				if len(diff) == 0 {
					diff = []string{"resume: re-apply the configured spec"}
				}
			case swarm.UpdateStateRollbackCompleted:
				if len(diff) > 0 {
					note = append(note, "its last update was rolled back: "+us.Message)
				}
			}
		}
		if len(diff) == 0 {
			if us := cur.UpdateStatus; us != nil && (us.State == swarm.UpdateStateUpdating || us.State == swarm.UpdateStateRollbackStarted) {
				// An update (an earlier deploy's) is still rolling out: the watch
				// follows it as if this run had applied it, so a rollback is not
				// reported as converged.
				var prev string
				if cur.PreviousSpec != nil {
					prev = cur.PreviousSpec.Labels[stacks.LabelSpecHash]
				}
				s.touch(svc.Name, touch{rolls: true, previous: prev, applied: svc.Hash, since: cur.UpdatedAt})
			}
			continue
		}
		st := s.step(ComponentService, plan.Update, svc.Name)
		rolls := cur.Spec.Labels[stacks.LabelTaskHash] != svc.Spec.Labels[stacks.LabelTaskHash]
		var after []string
		if rolls {
			after = startsAfter(svc.After(), starting)
		}
		if len(after) > 0 {
			note = append(note, "rolls once "+strings.Join(after, ", ")+" started (ordered after it)")
		}
		st.Diff, st.Note = diff, strings.Join(note, "; ")
		st.Apply = s.afterStarted(svc.Name, after, s.applyService(svc, cur.ID))
		starting[svc.Name] = rolls && replicas(svc.Spec) != 0
		steps = append(steps, st)
	}
	return steps
}

// startsAfter lists the services of deps whose tasks this plan starts (created or
// rolled by an earlier step; stacks.Build orders dependencies first). A service is
// created after its DependsOn and rolled after its DependsOn and RollsAfter.
func startsAfter(deps []string, starting map[string]bool) []string {
	var out []string
	for _, dep := range deps {
		if starting[dep] {
			out = append(out, dep)
		}
	}
	return out
}

// replicas is the service's replica count (-1 for a global service).
func replicas(spec swarm.ServiceSpec) int {
	if r := spec.Mode.Replicated; r != nil && r.Replicas != nil {
		return int(*r.Replicas)
	}
	return -1
}

// startWait bounds how long a service waits for its dependencies to start before
// deploy applies it anyway (the convergence wait then reports the dependency).
var startWait = 2 * time.Minute

// afterStarted runs apply once each service in deps has a task of the spec this
// deploy applied that got as far as starting its container: `docker stack deploy`
// starts every service at once, so a service whose health check needs another
// (the API its database) fails its first checks and becomes healthy one health
// interval later than it could; worse, a rolling update of it during the database's
// restart can roll back. A dependency whose tasks fail or cannot be scheduled does
// not hold the step: the convergence wait reports it.
func (s *session) afterStarted(name string, deps []string, apply func(context.Context) error) func(context.Context) error {
	if len(deps) == 0 {
		return apply
	}
	return func(ctx context.Context) error {
		for _, dep := range deps {
			if err := s.waitStarted(ctx, name, dep); err != nil {
				return err
			}
		}
		return apply(ctx)
	}
}

func (s *session) waitStarted(ctx context.Context, name, dep string) error {
	poll := s.opts.Poll
	if poll <= 0 || poll > 250*time.Millisecond {
		poll = 250 * time.Millisecond // a short wait on the critical path: poll it closely
	}
	deadline := time.Now().Add(startWait)
	s.opts.Progress.Status(s.site.Name+": "+name, "waits for "+dep+" to start")
	// Only tasks of the dependency's current spec: those this deploy created or
	// rolled to. (Not "created since the update": swarm's allocator bumps the
	// service's update time after the orchestrator made its first tasks.)
	f := make(client.Filters).Add("service", dep).Add("_up-to-date", "true")
	for {
		res, err := s.eng.TaskList(ctx, client.TaskListOptions{Filters: f})
		if err != nil {
			return fmt.Errorf("wait for %s to start: %w", dep, err)
		}
		for _, t := range res.Items {
			switch st := t.Status.State; {
			case st == swarm.TaskStateStarting || st == swarm.TaskStateRunning:
				return nil
			case st == swarm.TaskStateFailed || st == swarm.TaskStateRejected || t.Status.Err != "":
				why := string(st)
				if t.Status.Err != "" {
					why += ": " + t.Status.Err
				}
				s.opts.Progress.Infof("%s: %s: %s did not start (%s); applying it anyway", s.site.Name, name, dep, why)
				return nil
			}
		}
		if time.Now().After(deadline) {
			s.opts.Progress.Infof("%s: %s: %s has not started after %s; applying it anyway", s.site.Name, name, dep, startWait)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// applyService creates (id empty) or updates the service, without asking a
// registry for the image digest: engines pull (or use their local image) themselves.
func (s *session) applyService(svc stacks.Service, id string) func(context.Context) error {
	return func(ctx context.Context) error {
		spec := svc.Spec
		if spec.TaskTemplate.ContainerSpec != nil {
			cs := *spec.TaskTemplate.ContainerSpec
			spec.TaskTemplate.ContainerSpec = &cs
		}
		if err := s.resolveIDs(ctx, &spec); err != nil {
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
		if id == "" {
			if _, err := s.eng.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: spec}); err != nil {
				if !isConflict(err) {
					return fmt.Errorf("create service %s: %w", svc.Name, err)
				}
				// Created by a run killed after the call: update it instead.
				res, ierr := s.eng.ServiceInspect(ctx, svc.Name, client.ServiceInspectOptions{})
				if ierr != nil {
					return fmt.Errorf("create service %s: %w", svc.Name, err)
				}
				id = res.Service.ID
			} else {
				s.touch(svc.Name, touch{created: true, applied: svc.Hash, since: s.updatedAt(ctx, svc.Name)})
				return nil
			}
		}
		cur, err := s.eng.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect service %s: %w", svc.Name, err)
		}
		// Keep the force-update counter, as `docker stack deploy` does, so the update
		// does not itself force a restart.
		spec.TaskTemplate.ForceUpdate = cur.Service.Spec.TaskTemplate.ForceUpdate
		rolls := cur.Service.Spec.Labels[stacks.LabelTaskHash] != svc.Spec.Labels[stacks.LabelTaskHash]
		if _, err := s.eng.ServiceUpdate(ctx, id, client.ServiceUpdateOptions{Version: cur.Service.Version, Spec: spec}); err != nil {
			return fmt.Errorf("update service %s: %w", svc.Name, err)
		}
		s.touch(svc.Name, touch{rolls: rolls, previous: cur.Service.Spec.Labels[stacks.LabelSpecHash], applied: svc.Hash,
			since: s.updatedAt(ctx, id)})
		return nil
	}
}

// updatedAt is the manager's time of the service's last change (zero if it cannot
// be read: then every failed task counts).
func (s *session) updatedAt(ctx context.Context, id string) time.Time {
	res, err := s.eng.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		return time.Time{}
	}
	return res.Service.UpdatedAt
}
