package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// meetPart is a part whose plan waits until every part of the meeting has started
// planning (or gives up after a while): planned one after the other, the first
// one gives up.
type meetPart struct {
	name    string
	started chan struct{} // each part sends one value when it starts
	n       int           // the parts of the meeting
	steps   []plan.Step
	err     error
}

func (p meetPart) Name() string { return p.name }

func (p meetPart) Plan(ctx context.Context, _ *sites.Topology, _ *sites.Site) ([]plan.Step, error) {
	p.started <- struct{}{}
	deadline := time.After(5 * time.Second)
	for len(p.started) < p.n {
		select {
		case <-deadline:
			return nil, fmt.Errorf("%s: the other parts did not start planning meanwhile", p.name)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return p.steps, p.err
}

// TestPlanSitePartsAtOnce: the parts of a site are planned at once (a site's plan
// takes as long as its slowest part), and the site's plan is what planning them
// in order gives: steps in part order, errors in part order, a plan.NotYet error
// after a part with pending steps shown as planned during deploy.
func TestPlanSitePartsAtOnce(t *testing.T) {
	const n = 4
	started := make(chan struct{}, n)
	step := func(name string) []plan.Step {
		return []plan.Step{{Site: "douala", Component: plan.Component(name), Action: plan.Create, Name: name}}
	}
	parts := []plan.Part{
		meetPart{name: "a", started: started, n: n, steps: step("a")},
		meetPart{name: "b", started: started, n: n, err: errors.New("b failed")},
		meetPart{name: "c", started: started, n: n, err: plan.NotYet(errors.New("c's database does not answer"))},
		meetPart{name: "d", started: started, n: n, err: errors.New("d failed")},
	}
	topo := &sites.Topology{Env: "dev"}
	site := &sites.Site{Name: "douala"}
	opts := Options{Open: func(context.Context, *sites.Site) (Engine, func(), error) { return noSwarmEngine{}, func() {}, nil }}
	sp := planSite(context.Background(), topo, site, parts, opts)
	var got []string
	for _, st := range sp.Steps {
		got = append(got, string(st.Component)+" "+st.Name)
	}
	if want := "a a|c (planned during deploy, after the steps above)"; strings.Join(got, "|") != want {
		t.Errorf("steps %q, want %q", strings.Join(got, "|"), want)
	}
	if want := "b: b failed; d: d failed"; sp.Error != want {
		t.Errorf("error %q, want %q", sp.Error, want)
	}
}
