package swarm

import (
	"context"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// Open connects to every node's engine of the site (engine.ForNode); close releases
// them.
func Open(ctx context.Context, site *sites.Site) (engines map[string]Engine, closeAll func(), err error) {
	var opened []*client.Client
	closeAll = func() {
		for _, c := range opened {
			_ = c.Close() // releasing a client: nothing to do about a failure
		}
	}
	engines = map[string]Engine{}
	for i := range site.Nodes {
		n := &site.Nodes[i]
		c, err := engine.ForNode(ctx, site, n)
		if err != nil {
			closeAll()
			return nil, func() {}, err
		}
		opened = append(opened, c)
		engines[n.Name] = c
	}
	return engines, closeAll, nil
}

// Part is the swarm part of a site's deploy path (plan.Part).
type Part struct{}

// Name is "swarm".
func (Part) Name() string { return "swarm" }

// Plan opens the site's node engines and plans the swarm. With no steps the engines
// are closed at once; otherwise the last step's Apply closes them when it has run.
func (Part) Plan(ctx context.Context, _ *sites.Topology, site *sites.Site) ([]plan.Step, error) {
	engines, closeAll, err := Open(ctx, site)
	if err != nil {
		return nil, err
	}
	steps, err := Plan(ctx, site, engines)
	if err != nil || len(steps) == 0 {
		closeAll()
		return steps, err
	}
	last := &steps[len(steps)-1]
	apply := last.Apply
	last.Apply = func(ctx context.Context) error {
		defer closeAll()
		return apply(ctx)
	}
	return steps, nil
}
