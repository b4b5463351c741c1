package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/stacks"
)

// planPrune removes what sitectl created for the site that the config no longer
// wants: old versions of secrets and configs always (once the services converged,
// so a rollback still finds them), and with --prune also services, networks and
// whole secrets/configs the stacks dropped. Objects without sitectl's labels are
// never touched.
func (s *session) planPrune(d *stacks.Desired, l *live) []plan.Step {
	var steps, later []plan.Step
	var kept []string
	wantSvc := map[string]bool{}
	for _, x := range d.Services {
		wantSvc[x.Name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(l.services)) {
		x := l.services[name]
		if wantSvc[name] || !managedBy(x.Spec.Labels, s.site.Name) {
			continue
		}
		if !s.opts.Prune {
			kept = append(kept, "service "+name)
			continue
		}
		st := s.step(ComponentService, plan.Remove, name)
		st.Diff = []string{"stack " + x.Spec.Labels[stacks.LabelStack] + " no longer lists it"}
		id := x.ID
		st.Apply = func(ctx context.Context) error {
			if _, err := s.eng.ServiceRemove(ctx, id, client.ServiceRemoveOptions{}); err != nil && !isNotFound(err) {
				return fmt.Errorf("remove service %s: %w", name, err)
			}
			return nil
		}
		steps = append(steps, st)
	}
	for _, kind := range []struct {
		component plan.Component
		want      []stacks.Object
		have      []liveObj
	}{{ComponentSecret, d.Secrets, l.secrets}, {ComponentConfig, d.Configs, l.configs}} {
		names, logicals := map[string]bool{}, map[string]bool{}
		for _, o := range kind.want {
			names[o.Name], logicals[o.Logical] = true, true
		}
		for _, o := range kind.have {
			if names[o.Name] || !managedBy(o.Labels, s.site.Name) {
				continue
			}
			old := logicals[o.Labels[stacks.LabelObject]]
			if !old && !s.opts.Prune {
				kept = append(kept, string(kind.component)+" "+o.Name)
				continue
			}
			st := s.step(kind.component, plan.Remove, o.Name)
			st.Diff = []string{"no longer used by the stacks"}
			if old {
				st.Diff = []string{"old version of " + o.Labels[stacks.LabelObject]}
			}
			st.Apply = s.removeObject(kind.component, o)
			later = append(later, st)
		}
	}
	wantNet := map[string]bool{}
	for _, n := range d.Networks {
		wantNet[n.Name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(l.networks)) {
		n := l.networks[name]
		if wantNet[name] || !managedBy(n.Labels, s.site.Name) {
			continue
		}
		if !s.opts.Prune {
			kept = append(kept, "network "+name)
			continue
		}
		st := s.step(ComponentNetwork, plan.Remove, name)
		st.Diff = []string{"no longer used by the stacks"}
		id := n.ID
		st.Apply = s.afterConverged(func(ctx context.Context) error {
			_, err := s.eng.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
			return err
		}, "remove network "+name)
		later = append(later, st)
	}
	steps = append(steps, later...)
	if len(kept) > 0 {
		steps = append(steps, plan.Step{Site: s.site.Name, Component: ComponentPrune, Action: plan.Noop, Name: "kept",
			Note: "no longer in the config, kept (deploy --prune removes them): " + strings.Join(kept, ", ")})
	}
	return steps
}

func (s *session) removeObject(component plan.Component, o liveObj) func(context.Context) error {
	return s.afterConverged(func(ctx context.Context) error {
		var err error
		if component == ComponentSecret {
			_, err = s.eng.SecretRemove(ctx, o.ID, client.SecretRemoveOptions{})
		} else {
			_, err = s.eng.ConfigRemove(ctx, o.ID, client.ConfigRemoveOptions{})
		}
		return err
	}, "remove "+string(component)+" "+o.Name)
}

// afterConverged runs a removal once the site's services converged, retrying while
// the object is still in use by tasks shutting down.
func (s *session) afterConverged(remove func(context.Context) error, what string) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := s.waitConverged(ctx); err != nil {
			return fmt.Errorf("%s: not removed: %w", what, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := remove(ctx)
			switch {
			case err == nil, isNotFound(err):
				return nil
			case !isInUse(err) || time.Now().After(deadline):
				return fmt.Errorf("%s: %w", what, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
}

func short(h string) string {
	if h == "" {
		return "(none)"
	}
	return h
}

func isConflict(err error) bool {
	var c interface{ Conflict() }
	return errors.As(err, &c) || strings.Contains(err.Error(), "already exists") || strings.Contains(strings.ToLower(err.Error()), "conflict")
}

func isNotFound(err error) bool {
	var c interface{ NotFound() }
	return errors.As(err, &c) || strings.Contains(strings.ToLower(err.Error()), "not found")
}

func isInUse(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "in use") || strings.Contains(m, "active endpoints")
}

// only keeps, of what the site's stacks want and what its swarm holds, the objects
// of the named stacks and the site networks (Options.Stacks).
func only(d *stacks.Desired, l *live, names []string) {
	filterStacks(d, l, func(stack string) bool { return stack == stacks.SiteStack || slices.Contains(names, stack) })
}

// filterStacks keeps, of desired and live, the objects of the stacks keep accepts
// (and, live, what sitectl does not manage).
func filterStacks(d *stacks.Desired, l *live, keep func(string) bool) {
	d.Stacks = slices.DeleteFunc(d.Stacks, func(n string) bool { return !keep(n) })
	d.Networks = slices.DeleteFunc(d.Networks, func(n stacks.Network) bool { return !keep(n.Stack) })
	d.Secrets = slices.DeleteFunc(d.Secrets, func(o stacks.Object) bool { return !keep(o.Stack) })
	d.Configs = slices.DeleteFunc(d.Configs, func(o stacks.Object) bool { return !keep(o.Stack) })
	d.Services = slices.DeleteFunc(d.Services, func(svc stacks.Service) bool { return !keep(svc.Stack) })
	in := map[string]bool{}
	for _, svc := range d.Services {
		in[svc.Name] = true
	}
	for i := range d.Services {
		d.Services[i].DependsOn = slices.DeleteFunc(d.Services[i].DependsOn, func(n string) bool { return !in[n] })
		d.Services[i].RollsAfter = slices.DeleteFunc(d.Services[i].RollsAfter, func(n string) bool { return !in[n] })
	}
	for name, n := range l.networks {
		if n.Labels[stacks.LabelManaged] == "true" && !keep(n.Labels[stacks.LabelStack]) {
			delete(l.networks, name)
		}
	}
	for name, svc := range l.services {
		if svc.Spec.Labels[stacks.LabelManaged] == "true" && !keep(svc.Spec.Labels[stacks.LabelStack]) {
			delete(l.services, name)
		}
	}
	drop := func(o liveObj) bool {
		return o.Labels[stacks.LabelManaged] == "true" && !keep(o.Labels[stacks.LabelStack])
	}
	l.secrets = slices.DeleteFunc(l.secrets, drop)
	l.configs = slices.DeleteFunc(l.configs, drop)
}
