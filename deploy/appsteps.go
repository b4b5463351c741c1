package deploy

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// Apps is the part that deploys the operator's apps, each as a group of its own:
// deploy plans, applies and waits for one app after the other, and an app that
// fails (a bad image, a failing health check, a rollback) fails only its group:
// the other apps, the built-in stacks (the stacks part, before it) and the parts
// after it still run, and the site's error names the app.
var Apps plan.Part = appsPart{}

type appsPart struct{}

func (appsPart) Name() string { return "apps" }

func (p appsPart) Plan(ctx context.Context, topo *sites.Topology, site *sites.Site) (steps []plan.Step, err error) {
	err = withOwnSession(ctx, topo, site, func(s *session) error {
		steps, err = p.planSession(ctx, s)
		return err
	})
	return steps, err
}

// planSession is every app's group's steps, one group after the other.
func (appsPart) planSession(ctx context.Context, s *session) ([]plan.Step, error) {
	var out []plan.Step
	for _, g := range appGroups(s) {
		steps, err := g.plan(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, steps...)
	}
	return out, nil
}

// waitSession is a no-op: deploy waits for each group after applying it.
func (appsPart) waitSession(context.Context, *session) error { return nil }

// group is one app's share of a site's run: a session that plans, prunes and waits
// for that app's stack only.
type group struct {
	name string // "app <name>", as the plan shows it and errors name it
	sess *session
}

// appGroups are the groups of the apps the configuration declares (with
// opts.Stacks, those it names), in name order. An app the site does not run has a
// group too: with --prune it removes what the app left at the site.
func appGroups(s *session) []group {
	var out []group
	for _, a := range s.topo.Apps {
		if len(s.opts.Stacks) > 0 && !slices.Contains(s.opts.Stacks, a.Name) {
			continue
		}
		name := a.Name
		out = append(out, group{name: "app " + name, sess: s.child(func(stack string) bool { return stack == name })})
	}
	slices.SortFunc(out, func(x, y group) int {
		switch {
		case x.name < y.name:
			return -1
		case x.name > y.name:
			return 1
		}
		return 0
	})
	return out
}

// plan plans the group's stack, each step marked with the group.
func (g group) plan(ctx context.Context) ([]plan.Step, error) {
	steps, err := g.sess.planStacks(ctx)
	if err != nil {
		return nil, err
	}
	for i := range steps {
		steps[i].Group = g.name
		// The stacks part's first step says it once for the site.
		steps[i].Note = strings.TrimPrefix(strings.TrimSuffix(strings.ReplaceAll(steps[i].Note, "; "+noSwarmNote, ""), noSwarmNote), "; ")
	}
	return steps, nil
}

// buildCache holds a site's built stacks for one swarm key (the cluster ID, "" for
// a site with no swarm yet), so the stacks part and each app's group render and
// convert the site once. Each get returns a copy its caller may filter.
type buildCache struct {
	mu    sync.Mutex
	key   string
	built *stacks.Desired
}

func (c *buildCache) get(key string, build func() (*stacks.Desired, error)) (*stacks.Desired, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.built == nil || c.key != key {
		d, err := build()
		if err != nil {
			return nil, err
		}
		c.key, c.built = key, d
	}
	return cloneDesired(c.built), nil
}

// cloneDesired copies d deeply enough for filterStacks, which deletes from its
// lists and from each service's DependsOn and RollsAfter.
func cloneDesired(d *stacks.Desired) *stacks.Desired {
	out := *d
	out.Stacks = slices.Clone(d.Stacks)
	out.Networks = slices.Clone(d.Networks)
	out.Secrets = slices.Clone(d.Secrets)
	out.Configs = slices.Clone(d.Configs)
	out.Services = slices.Clone(d.Services)
	for i := range out.Services {
		out.Services[i].DependsOn = slices.Clone(out.Services[i].DependsOn)
		out.Services[i].RollsAfter = slices.Clone(out.Services[i].RollsAfter)
	}
	return &out
}
