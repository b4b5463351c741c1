package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// afterTopo is the example sites (dev) with apps alpha, starting after beta
// (x-sitectl.after), and beta, whose image is betaImage, at douala.
func afterTopo(t *testing.T, betaImage string) (*sites.Topology, *sites.Site) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "apps")
	for name, body := range map[string]string{
		"alpha": "services:\n  web:\n    image: registry.example.com/alpha:1\nx-sitectl:\n  sites: [douala]\n  after: [beta]\n",
		"beta":  fmt.Sprintf("services:\n  web:\n    image: %s\nx-sitectl:\n  sites: [douala]\n", betaImage),
	} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "compose.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}, KnownStacks: append([]string{"alpha", "beta"}, sites.KnownStacks...)})
	if err != nil {
		t.Fatal(err)
	}
	list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	site := topo.Site("douala")
	site.Stacks = nil
	return topo, site
}

// TestAppStartOrder: app alpha starting after beta (x-sitectl.after) is planned
// and deployed after it (beta_web is created first, against name order), once
// beta converged; when beta does not converge (its image missing), alpha is not
// deployed and the error says why.
func TestAppStartOrder(t *testing.T) {
	topo, site := afterTopo(t, "registry.example.com/beta:1")
	eng := &memSwarm{}
	parts := []plan.Part{Stacks, Apps}
	opts := Options{Environ: []string{}, Poll: 5 * time.Millisecond,
		Open: func(context.Context, *sites.Site) (Engine, func(), error) { return eng, func() {}, nil }}
	p := Plan(context.Background(), topo, []*sites.Site{site}, parts, opts)
	var groups []string
	for _, st := range p.Sites[0].Steps {
		if st.Group != "" && !slices.Contains(groups, st.Group) {
			groups = append(groups, st.Group)
		}
	}
	if !slices.Equal(groups, []string{"app beta", "app alpha"}) {
		t.Errorf("plan's groups %v, want app beta, then app alpha", groups)
	}
	if err := Deploy(context.Background(), topo, []*sites.Site{site}, parts, opts)[0].Err(); err != nil {
		t.Fatal(err)
	}
	if got := eng.serviceNames(); !slices.Equal(got, []string{"beta_web", "alpha_web"}) {
		t.Errorf("services created %v, want beta_web, then alpha_web", got)
	}

	topo, site = afterTopo(t, "registry.example.com/missing/beta:1")
	eng = &memSwarm{}
	err := Deploy(context.Background(), topo, []*sites.Site{site}, parts, opts)[0].Err()
	if err == nil || !strings.Contains(err.Error(), "app alpha: not deployed: it starts after app beta (x-sitectl.after)") || !strings.Contains(err.Error(), "app beta: service beta_web did not converge") {
		t.Errorf("deploy with beta failing: %v, want beta's failure and alpha not deployed", err)
	}
	if got := eng.serviceNames(); !slices.Equal(got, []string{"beta_web"}) {
		t.Errorf("services created %v, want beta_web only", got)
	}
}

// TestStartOrderGroups: startOrder keeps name order but for after:; the groups of
// a cycle (which config validate refuses) come after the rest, in name order.
func TestStartOrderGroups(t *testing.T) {
	mk := func(spec ...string) []group {
		var out []group
		for _, s := range spec {
			name, after, _ := strings.Cut(s, ":")
			a := &sites.App{Name: name}
			if after != "" {
				a.After = strings.Split(after, ",")
			}
			out = append(out, group{name: "app " + name, app: a})
		}
		return out
	}
	names := func(gs []group) string {
		var out []string
		for _, g := range gs {
			out = append(out, g.app.Name)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct{ in, want string }{
		{"a b c", "a b c"},
		{"a:c b c", "b c a"},
		{"a:b,c b:c c", "c b a"},
		{"a:x b", "a b"},       // an app not in the run does not hold it back
		{"a:b b:a c", "c a b"}, // a cycle: after the rest, in name order
	} {
		if got := names(startOrder(mk(strings.Fields(tc.in)...))); got != tc.want {
			t.Errorf("startOrder(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
