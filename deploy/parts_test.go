package deploy

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// TestPartsFromOptions: the part list is built from the options, a new one per
// call: the replication options of a deploy do not leak into a later plan.
func TestPartsFromOptions(t *testing.T) {
	deploying := Parts(Options{Replication: postgres.Options{PeerWait: 2 * time.Minute, Starting: []string{"douala"}}})
	planning := Parts(Options{})
	var names []string
	for _, p := range deploying {
		names = append(names, p.Name())
	}
	if want := []string{"swarm", "kong certificate", "stacks", "apps", "tunnels", "firewall", "postgres replication", "backup database side", "mongo"}; !slices.Equal(names, want) {
		t.Fatalf("parts %v, want %v", names, want)
	}
	d, ok1 := deploying[6].(*postgres.Part)
	p, ok2 := planning[6].(*postgres.Part)
	if !ok1 || !ok2 || d == p {
		t.Fatalf("want a replication part of its own per call, got %T %T", deploying[6], planning[6])
	}
	if app := Parts(Options{Stacks: []string{"hello"}}); len(app) != 2 || app[0] != Stacks || app[1] != Apps {
		t.Errorf("an app's parts: %v, want the stacks part (the site networks) and the apps part", app)
	}
	if d.Opts.PeerWait != 2*time.Minute || !slices.Equal(d.Opts.Starting, []string{"douala"}) || p.Opts.PeerWait != 0 || p.Opts.Starting != nil {
		t.Errorf("replication options: deploy %+v, plan %+v", d.Opts, p.Opts)
	}
}

// closingPart counts Close calls (plan.Closer).
type closingPart struct {
	fakePart
	closed int
}

func (p *closingPart) Close() { p.closed++ }

// TestRunsCloseParts: Plan and Deploy close the parts that hold connections once
// every site is done.
func TestRunsCloseParts(t *testing.T) {
	topo := &sites.Topology{Env: "dev", Sites: []*sites.Site{{Name: "douala"}, {Name: "yaounde"}}}
	opts := Options{Environ: []string{}, Open: func(context.Context, *sites.Site) (Engine, func(), error) {
		return noSwarmEngine{}, func() {}, nil
	}}
	p := &closingPart{fakePart: fakePart{name: "closing"}}
	Plan(context.Background(), topo, topo.Sites, []plan.Part{p}, opts)
	if p.closed != 1 {
		t.Errorf("Plan closed the part %d times, want once", p.closed)
	}
	for _, r := range Deploy(context.Background(), topo, topo.Sites, []plan.Part{p}, opts) {
		if r.Err() != nil {
			t.Fatalf("deploy %s: %v", r.Site, r.Err())
		}
	}
	if p.closed != 2 {
		t.Errorf("Deploy closed the part %d times in all, want twice", p.closed)
	}
}
