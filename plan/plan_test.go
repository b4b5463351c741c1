package plan

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
)

func TestRender(t *testing.T) {
	tests := []struct {
		name string
		plan Plan
		want [3]int
	}{
		{"empty", Plan{Env: "lab", Sites: []SitePlan{{Site: "douala", Steps: []Step{{Site: "douala", Component: "service", Action: Noop, Name: "x"}}}}}, [3]int{}},
		{"changes", Plan{Env: "lab", Sites: []SitePlan{
			{Site: "cloud", Error: "engine unix:///x: connection refused"},
			{Site: "douala", Steps: []Step{
				{Component: "network", Action: Create, Name: "data", Diff: []string{"subnet 10.111.2.0/24"}, Note: "encryption off: lab kernel has no ESP"},
				{Component: "service", Action: Update, Name: "django-api_web", Diff: []string{"replicas: 1 → 2"}},
				{Component: "tunnel", Action: Reload, Name: "douala-cloud"},
				{Component: "secret", Action: Remove, Name: "postgres-password-0a1b2c"},
			}, Notes: []string{"mongo: cutting douala-cloud leaves douala read-only"}},
		}}, [3]int{1, 2, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := tt.plan.Render(&b); err != nil {
				t.Fatal(err)
			}
			golden.AssertString(t, "render-"+tt.name+".golden", b.String())
			c, u, r := tt.plan.Counts()
			if [3]int{c, u, r} != tt.want {
				t.Errorf("counts = %v, want %v", [3]int{c, u, r}, tt.want)
			}
		})
	}
}

func TestStale(t *testing.T) {
	svc := func(action Action, name string, diff ...string) Step {
		return Step{Component: "service", Action: action, Name: name, Diff: diff}
	}
	saved := &Plan{Env: "production", Sites: []SitePlan{
		{Site: "douala", Steps: []Step{
			svc(Update, "django-api_api", "replicas: 1 → 2"),
			{Component: "swarm", Action: Noop, Name: "checked"},
			{Component: "postgres", Action: Update, Name: "(planned during deploy, after the steps above)", Note: "cannot be read: connection refused"},
		}},
		{Site: "cloud", Steps: []Step{}},
	}}
	same := &Plan{Env: "production", Sites: []SitePlan{
		{Site: "douala", Steps: []Step{
			svc(Update, "django-api_api", "replicas: 1 → 2"),
			{Component: "postgres", Action: Update, Name: "(planned during deploy, after the steps above)", Note: "cannot be read: i/o timeout"},
		}},
		{Site: "cloud", Steps: []Step{{Component: "swarm", Action: Noop, Name: "checked", Note: "other words"}}},
	}}
	if got := Stale(saved, same); len(got) != 0 {
		t.Errorf("the same changes (notes and checks aside) are stale: %q", got)
	}
	now := &Plan{Env: "staging", Sites: []SitePlan{
		{Site: "douala", Steps: []Step{
			svc(Update, "django-api_api", "replicas: 1 → 3"),
			{Component: "postgres", Action: Update, Name: "(planned during deploy, after the steps above)"},
		}},
		{Site: "yaounde", Steps: []Step{}},
	}}
	want := []string{
		"the saved plan is for environment production, not staging",
		"douala: no longer ~ service django-api_api (replicas: 1 → 2)",
		"douala: now also ~ service django-api_api (replicas: 1 → 3)",
		"yaounde: not in the saved plan",
		"cloud: in the saved plan, not selected now",
	}
	if got := Stale(saved, now); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Stale:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	pruned := *same
	pruned.Prune = true
	if got := strings.Join(Stale(saved, &pruned), "\n"); got != "the saved plan was made without --prune: deploy without it" {
		t.Errorf("Stale with --prune on one side: %q", got)
	}
	broken := &Plan{Env: "production", Sites: []SitePlan{{Site: "douala", Error: "engine unreachable"}, {Site: "cloud", Steps: []Step{svc(Create, "x")}}}}
	got := strings.Join(Stale(broken, saved), "\n")
	if !strings.Contains(got, "douala: the saved plan could not plan it (engine unreachable)") || !strings.Contains(got, "cloud: no longer + service x") {
		t.Errorf("Stale of a saved plan with an error:\n%s", got)
	}
	if got := strings.Join(Stale(saved, broken), "\n"); !strings.Contains(got, "douala: cannot be planned now (engine unreachable)") {
		t.Errorf("Stale against a plan with an error:\n%s", got)
	}
}

func TestJoinNotes(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"link to cloud", "start_action trap is not supported"}, "link to cloud; start_action trap is not supported"},
		{[]string{"", "a", "b"}, "a; b"},
		{[]string{"", ""}, ""},
		{nil, ""},
	} {
		if got := JoinNotes(tc.in...); got != tc.want {
			t.Errorf("JoinNotes(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
