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
