package deploy

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	_ "github.com/sitectl/sitectl/stacks/all"
)

// noSwarmEngine is an engine whose swarm is not initialized; every other Engine
// method panics (planning a site without a swarm reads nothing else).
type noSwarmEngine struct{ Engine }

func (noSwarmEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: system.Info{}}, nil
}

// TestPlanWithoutSwarm: before the swarm exists, the secret and config version
// suffixes come from a random key; the steps name them <logical>_<version>, so two
// plans of the site are the same (deploy --plan compares them).
func TestPlanWithoutSwarm(t *testing.T) {
	for _, v := range []string{"SITECTL_PG_PASSWORD", "SITECTL_PG_APP_PASSWORD", "SITECTL_DJANGO_SECRET_KEY"} {
		t.Setenv(v, "not-a-real-secret")
	}
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	site := topo.Site("douala")
	if site == nil {
		t.Fatal("no site douala")
	}
	site.Stacks = []string{"postgres", "django-api"}
	planOnce := func() []plan.Step {
		s := newSession(topo, site, noSwarmEngine{}, Options{Environ: []string{}})
		steps, err := s.planStacks(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return steps
	}
	first := planOnce()
	var objects []string
	for _, st := range first {
		if st.Component == ComponentSecret || st.Component == ComponentConfig {
			objects = append(objects, st.Name)
			if !strings.HasSuffix(st.Name, "_<version>") {
				t.Errorf("%s: named with its random version suffix", st)
			}
		}
	}
	if len(objects) == 0 {
		t.Fatalf("no secret or config steps in %v", first)
	}
	a, b := &plan.Plan{Env: "dev", Sites: []plan.SitePlan{{Site: "douala", Steps: first}}}, &plan.Plan{Env: "dev", Sites: []plan.SitePlan{{Site: "douala", Steps: planOnce()}}}
	if diff := plan.Stale(a, b); len(diff) != 0 {
		t.Errorf("two plans of a site without a swarm differ: %q", diff)
	}
}
