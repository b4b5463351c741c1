package deploy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/stacks"
)

// liveObj is a secret or config as the swarm holds it (never its data).
type liveObj struct {
	ID     string
	Name   string
	Labels map[string]string
}

// live is what the site's swarm holds now.
type live struct {
	networks map[string]network.Summary // by name, swarm-scoped only
	netNames map[string]string          // ID → name
	secrets  []liveObj
	configs  []liveObj
	services map[string]swarm.Service // by name
}

func (l *live) netName(idOrName string) string {
	if n, ok := l.netNames[idOrName]; ok {
		return n
	}
	return idOrName
}

func emptyLive() *live {
	return &live{networks: map[string]network.Summary{}, netNames: map[string]string{}, services: map[string]swarm.Service{}}
}

// clone copies l deeply enough for filterStacks, which deletes from its maps and
// lists.
func (l *live) clone() *live {
	return &live{networks: maps.Clone(l.networks), netNames: maps.Clone(l.netNames), secrets: slices.Clone(l.secrets),
		configs: slices.Clone(l.configs), services: maps.Clone(l.services)}
}

// snapshot is the site's swarm as a run last read it: whether it is an active
// manager, its cluster ID and what it holds. The sessions of one run of the site
// (the stacks part and each app's group) share it, so a plan reads the swarm once
// per site however many stacks and apps it has (six requests: info, swarm, then
// the networks, secrets, configs and services listed once each). Applying a step,
// or waiting for services, drops it (forget): the next plan reads the swarm again,
// so a deploy's later group sees what the earlier ones changed.
type snapshot struct {
	mu      sync.Mutex
	swarm   bool // active and cluster are read
	active  bool
	cluster string
	live    *live // nil: not listed yet
}

// forget drops what was read: the swarm may have changed since.
func (c *snapshot) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.swarm, c.live = false, nil
}

// cachedSwarm is swarmState, read once per snapshot. An error is not kept: the next call
// reads again.
func (s *session) cachedSwarm(ctx context.Context) (active bool, cluster string, err error) {
	c := s.snap
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.swarm {
		if c.active, c.cluster, err = s.swarmState(ctx); err != nil {
			return false, "", err
		}
		c.swarm = true
	}
	return c.active, c.cluster, nil
}

// cachedLive is readLive, listed once per snapshot; it returns a copy the caller may
// filter. An error is not kept.
func (s *session) cachedLive(ctx context.Context) (*live, error) {
	c := s.snap
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live == nil {
		l, err := s.readLive(ctx)
		if err != nil {
			return nil, err
		}
		c.live = l
	}
	return c.live.clone(), nil
}

// prefetchLive starts listing the site's swarm in the background when the
// snapshot holds no list yet, so the lists travel while the caller renders the
// stacks; the caller waits on the returned channel before it returns (an error
// is not kept: its own cachedLive lists again and returns it).
func (s *session) prefetchLive(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	c := s.snap
	c.mu.Lock()
	listed := c.live != nil
	c.mu.Unlock()
	if listed {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		_, _ = s.cachedLive(ctx)
	}()
	return done
}

// readLive lists the site's networks, secrets, configs and services, the four
// requests at once; the first failing one in that order is the error.
func (s *session) readLive(ctx context.Context) (*live, error) {
	var (
		nets client.NetworkListResult
		secs client.SecretListResult
		cfgs client.ConfigListResult
		svcs client.ServiceListResult
		errs [4]error
		wg   sync.WaitGroup
	)
	for _, list := range []func(){
		func() { nets, errs[0] = s.eng.NetworkList(ctx, client.NetworkListOptions{}) },
		func() { secs, errs[1] = s.eng.SecretList(ctx, client.SecretListOptions{}) },
		func() { cfgs, errs[2] = s.eng.ConfigList(ctx, client.ConfigListOptions{}) },
		func() { svcs, errs[3] = s.eng.ServiceList(ctx, client.ServiceListOptions{}) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			list()
		}()
	}
	wg.Wait()
	for i, what := range []string{"networks", "secrets", "configs", "services"} {
		if errs[i] != nil {
			return nil, fmt.Errorf("list %s: %w", what, errs[i])
		}
	}
	l := emptyLive()
	for _, n := range nets.Items {
		l.netNames[n.ID] = n.Name
		if n.Scope == "swarm" {
			l.networks[n.Name] = n
		}
	}
	for _, x := range secs.Items {
		l.secrets = append(l.secrets, liveObj{ID: x.ID, Name: x.Spec.Name, Labels: x.Spec.Labels})
	}
	for _, x := range cfgs.Items {
		l.configs = append(l.configs, liveObj{ID: x.ID, Name: x.Spec.Name, Labels: x.Spec.Labels})
	}
	for _, x := range svcs.Items {
		l.services[x.Spec.Name] = x
	}
	return l, nil
}

// managedBy reports whether labels mark an object sitectl manages for site.
func managedBy(labels map[string]string, site string) bool {
	return labels[stacks.LabelManaged] == "true" && labels[stacks.LabelSite] == site
}

// resolveIDs fills the secret and config IDs of a desired spec by name (the
// converter leaves them empty; the objects exist by the time services apply).
func (s *session) resolveIDs(ctx context.Context, spec *swarm.ServiceSpec) error {
	cs := spec.TaskTemplate.ContainerSpec
	if cs == nil {
		return nil
	}
	secrets, err := withIDs(ctx, s, ComponentSecret, cs.Secrets,
		func(r *swarm.SecretReference) string { return r.SecretName },
		func(r *swarm.SecretReference, id string) { r.SecretID = id })
	if err != nil {
		return err
	}
	configs, err := withIDs(ctx, s, ComponentConfig, cs.Configs,
		func(r *swarm.ConfigReference) string { return r.ConfigName },
		func(r *swarm.ConfigReference, id string) { r.ConfigID = id })
	if err != nil {
		return err
	}
	cs.Secrets, cs.Configs = secrets, configs
	return nil
}

// withIDs returns copies of secret or config references with the IDs of the named
// objects filled in; an object missing from the swarm is an error.
func withIDs[R any](ctx context.Context, s *session, component plan.Component, refs []*R,
	name func(*R) string, setID func(*R, string)) ([]*R, error) {
	names := make([]string, 0, len(refs))
	for _, r := range refs {
		names = append(names, name(r))
	}
	ids, err := s.idsByName(ctx, component, names)
	if err != nil {
		return nil, err
	}
	out := make([]*R, 0, len(refs))
	for _, r := range refs {
		c := *r
		id := ids[name(r)]
		if id == "" {
			return nil, fmt.Errorf("%s %s does not exist in the swarm", component, name(r))
		}
		setID(&c, id)
		out = append(out, &c)
	}
	return out, nil
}

// idsByName looks up the IDs of secrets or configs by name.
func (s *session) idsByName(ctx context.Context, component plan.Component, names []string) (map[string]string, error) {
	ids := map[string]string{}
	if len(names) == 0 {
		return ids, nil
	}
	f := make(client.Filters).Add("name", names...)
	if component == ComponentSecret {
		res, err := s.eng.SecretList(ctx, client.SecretListOptions{Filters: f})
		if err != nil {
			return nil, fmt.Errorf("look up secrets: %w", err)
		}
		for _, x := range res.Items {
			ids[x.Spec.Name] = x.ID
		}
		return ids, nil
	}
	res, err := s.eng.ConfigList(ctx, client.ConfigListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("look up configs: %w", err)
	}
	for _, x := range res.Items {
		ids[x.Spec.Name] = x.ID
	}
	return ids, nil
}
