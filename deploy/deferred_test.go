package deploy

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// fakePart is a part with fixed steps or a fixed error.
type fakePart struct {
	name  string
	steps []plan.Step
	err   error
}

func (p fakePart) Name() string { return p.name }
func (p fakePart) Plan(context.Context, *sites.Topology, *sites.Site) ([]plan.Step, error) {
	return p.steps, p.err
}

// TestPlanDeferOnlyWhatCannotExistYet: on a site with no swarm yet (the swarm part
// has steps pending), a part may be "planned during deploy" only when its error is
// a fact the pending steps create (plan.NotYet: a database the stacks start). A
// secret whose source is unset or unreadable fails the site's plan, naming the
// secret and its reference, never a value.
func TestPlanDeferOnlyWhatCannotExistYet(t *testing.T) {
	const value = "pg-secret-value-canary"
	t.Setenv("SITECTL_DJANGO_SECRET_KEY", value)
	t.Setenv("SITECTL_PG_PASSWORD", value)
	t.Setenv("SITECTL_PG_APP_PASSWORD", value)
	initSwarm := fakePart{name: "swarm", steps: []plan.Step{{Site: "douala", Component: "swarm", Action: plan.Create, Name: "init"}}}
	notYet := fakePart{name: "postgres replication", err: plan.NotYet(errors.New("cannot reach douala's PostgreSQL"))}
	refused := fakePart{name: "tunnels", err: errors.New("vici douala: connect: no such file")}
	dir := t.TempDir()
	tests := []struct {
		name     string
		secret   *sites.SecretRef // postgres-password's reference (nil: as configured, set)
		unset    bool             // SITECTL_PG_PASSWORD unset
		parts    []plan.Part
		wantErr  []string // all in the site's error; none: no error
		deferred string   // the part shown as planned during deploy
	}{
		{name: "env variable unset", unset: true, parts: []plan.Part{initSwarm, Stacks},
			wantErr: []string{"secret postgres-password", "env:SITECTL_PG_PASSWORD", "is not set"}},
		{name: "file is a directory", secret: &sites.SecretRef{File: dir}, parts: []plan.Part{initSwarm, Stacks},
			wantErr: []string{"secret postgres-password", "file:" + dir, "is a directory"}},
		{name: "file missing", secret: &sites.SecretRef{File: dir + "/nope"}, parts: []plan.Part{initSwarm, Stacks},
			wantErr: []string{"secret postgres-password", "file:" + dir + "/nope", "no such file"}},
		{name: "database not answering yet", parts: []plan.Part{initSwarm, Stacks, notYet}, deferred: "postgres replication"},
		{name: "other error after pending steps", parts: []plan.Part{initSwarm, Stacks, refused},
			wantErr: []string{"tunnels: vici douala"}},
		{name: "not yet, nothing pending", parts: []plan.Part{notYet}, wantErr: []string{"postgres replication: cannot reach"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unset {
				t.Setenv("SITECTL_PG_PASSWORD", "")
				if err := os.Unsetenv("SITECTL_PG_PASSWORD"); err != nil {
					t.Fatal(err)
				}
			}
			topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			site := topo.Site("douala")
			site.Stacks = []string{"postgres", "django-api"}
			if tt.secret != nil {
				site.Secrets["postgres-password"] = *tt.secret
			}
			opts := Options{Environ: []string{}, Open: func(context.Context, *sites.Site) (Engine, func(), error) {
				return noSwarmEngine{}, func() {}, nil
			}}
			sp := planSite(context.Background(), topo, site, tt.parts, opts)
			var deferred []string
			for _, st := range sp.Steps {
				if strings.Contains(st.Name, "planned during deploy") {
					deferred = append(deferred, string(st.Component))
				}
			}
			if strings.Contains(sp.Error+strings.Join(deferred, ""), value) {
				t.Fatalf("the secret's value is in the plan")
			}
			if tt.wantErr == nil {
				if sp.Error != "" {
					t.Fatalf("error %q, want none", sp.Error)
				}
			} else {
				for _, w := range tt.wantErr {
					if !strings.Contains(sp.Error, w) {
						t.Errorf("error %q\nwant it to say %q", sp.Error, w)
					}
				}
			}
			if want := tt.deferred; strings.Join(deferred, ",") != want {
				t.Errorf("planned during deploy: %q, want %q", deferred, want)
			}
		})
	}
}
