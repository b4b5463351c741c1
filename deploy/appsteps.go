package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// Apps is the part that deploys the operator's apps, each as a group of its own
// (deployGroups): deploy plans and applies one app after the other, then waits for
// them all at once, each group for its own services; an app that fails (a bad
// image, a failing health check, a rollback) fails only its group: the other apps,
// the built-in stacks (the stacks part, before it) and the parts after it still
// run, and the site's error names the app.
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
	app  *sites.App
	// roles marks the group dropping the roles of apps no longer run (orphanRoleSteps).
	roles bool
}

// appGroups are the groups of the apps the configuration declares (with
// opts.Stacks, those it names), in start order: name order, except that an app
// comes after the apps its x-sitectl.after names (among those in the run). An app
// the site does not run has a group too: with --prune it removes what the app left
// at the site. With --prune, the group dropping the roles of apps no longer run
// comes last.
func appGroups(s *session) []group {
	var out []group
	for _, a := range s.topo.Apps {
		if len(s.opts.Stacks) > 0 && !slices.Contains(s.opts.Stacks, a.Name) {
			continue
		}
		name := a.Name
		out = append(out, group{name: "app " + name, app: a, sess: s.child(func(stack string) bool { return stack == name })})
	}
	slices.SortFunc(out, func(x, y group) int { return strings.Compare(x.name, y.name) })
	out = startOrder(out)
	if s.opts.Prune && len(s.opts.Stacks) == 0 && s.site.HasStack("postgres") {
		out = append(out, group{name: appRolesGroup, roles: true, sess: s.child(func(string) bool { return false })})
	}
	return out
}

// startOrder orders groups (in name order) so that each app's group comes after
// the groups of the apps it starts after (x-sitectl.after, among groups), the
// first ready in name order first. config validate refuses a cycle; were one left,
// its groups would come after the rest, in name order.
func startOrder(groups []group) []group {
	placed := map[string]bool{}
	in := map[string]bool{}
	for _, g := range groups {
		in[g.app.Name] = true
	}
	out := make([]group, 0, len(groups))
	for len(out) < len(groups) {
		next := -1
		for i, g := range groups {
			if placed[g.app.Name] {
				continue
			}
			if !slices.ContainsFunc(g.app.After, func(dep string) bool { return in[dep] && !placed[dep] }) {
				next = i
				break
			}
		}
		if next < 0 { // a cycle: the rest in name order
			for _, g := range groups {
				if !placed[g.app.Name] {
					placed[g.app.Name] = true
					out = append(out, g)
				}
			}
			break
		}
		placed[groups[next].app.Name] = true
		out = append(out, groups[next])
	}
	return out
}

// plan plans the group's stack, each step marked with the group.
func (g group) plan(ctx context.Context) ([]plan.Step, error) {
	if g.roles {
		return orphanRoleSteps(ctx, g.sess)
	}
	steps, err := g.sess.planStacks(ctx)
	if err != nil {
		return nil, err
	}
	if g.app != nil {
		// The app's role first: its services connect as it.
		role, err := appRoleStep(ctx, g.sess.site, g.app)
		if err != nil {
			return nil, err
		}
		if role != nil {
			steps = append([]plan.Step{*role}, steps...)
		}
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

// deployGroups deploys the groups of a site: each group's steps are planned and
// applied in turn (up to its removals of what services used), then sitectl waits
// for every group's services at once (each group only its own), then applies each
// converged group's removals. A group whose plan, steps or wait fail is left there,
// its error naming it; the others go on.
func deployGroups(ctx context.Context, opts Options, groups []group) (applied []plan.Step, failed []error) {
	runs := make([]*groupRun, len(groups))
	byApp := map[string]*groupRun{}
	for i, g := range groups {
		r := &groupRun{g: g}
		runs[i] = r
		if g.app != nil {
			byApp[g.app.Name] = r
		}
		if err := waitAfter(ctx, opts, g, byApp); err != nil {
			r.err = err
			continue
		}
		steps, err := g.plan(ctx)
		if err != nil {
			r.err = err
			continue
		}
		pre := steps
		if i := slices.IndexFunc(steps, func(st plan.Step) bool { return st.Action == plan.Remove && st.Component != ComponentService }); i >= 0 {
			pre, r.post = steps[:i], steps[i:]
		}
		done, err := applySteps(ctx, g.sess, opts, g.name, pre, nil)
		applied = append(applied, done...)
		r.err = err
	}
	var wg sync.WaitGroup
	for _, r := range runs {
		if r.err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := opts.Progress.Step("%s: %s converged", r.g.sess.site.Name, r.g.name)
			r.err = r.g.sess.waitConverged(ctx)
			r.g.sess.snap.forget()
			done(r.err)
		}()
	}
	wg.Wait()
	for _, r := range runs {
		if r.err == nil {
			done, err := applySteps(ctx, r.g.sess, opts, r.g.name, r.post, nil)
			applied = append(applied, done...)
			r.err = err
		}
		if r.err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", r.g.name, r.err))
		}
	}
	return applied, failed
}

// groupRun is one group's share of deployGroups: its removals left for after its
// wait, and its error.
type groupRun struct {
	g    group
	post []plan.Step
	err  error
}

// waitAfter waits, before g's steps, for the groups of the apps g starts after
// (x-sitectl.after) that this run deployed before it: each must converge, or g is
// not deployed (its error names the app it waited for).
func waitAfter(ctx context.Context, opts Options, g group, byApp map[string]*groupRun) error {
	if g.app == nil {
		return nil
	}
	for _, dep := range g.app.After {
		r := byApp[dep]
		if r == nil || r.g.app == g.app {
			continue
		}
		if r.err == nil {
			done := opts.Progress.Step("%s: %s converged (%s starts after it)", r.g.sess.site.Name, r.g.name, g.name)
			r.err = r.g.sess.waitConverged(ctx)
			r.g.sess.snap.forget()
			done(r.err)
		}
		if r.err != nil {
			return fmt.Errorf("not deployed: it starts after app %s (x-sitectl.after), which did not deploy: %w", dep, r.err)
		}
	}
	return nil
}
