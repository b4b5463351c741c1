package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/internal/apps/appgen"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// BenchmarkLab20Apps measures the goals on the shared lab with 20 generated
// apps (appgen: no Go code names them; the lab's stand-in image) on the three
// sites: the first `deploy --all` with the 20 apps (every part: the built-in stacks,
// the apps' 40 services, tunnels, firewall, replication, MongoDB), a no-op `deploy
// --all` right after (its share of the first; the steps it applied and the services
// the engines updated, both must be 0), and `sitectl plan --all --apps-dir D` (the
// CLI in-process) per iteration; each part's share of one plan is logged. The apps'
// stacks are removed at the end (the built-in stacks stay, as after
// TestLabDemoDBDown). Not run by `-run 'TestLab|Fuzz'`:
//
//	flock /tmp/sitectl-lab.lock go test -count=1 -run XXX -bench BenchmarkLab20Apps -benchtime 5x ./cmd/sitectl/
func BenchmarkLab20Apps(b *testing.B) {
	l := labtest.Shared(b)
	appsDir := filepath.Join(b.TempDir(), "apps")
	if err := appgen.Write(appsDir, 20, appgen.Options{Image: "sitectl-lab/cadvisor:standin"}); err != nil {
		b.Fatal(err)
	}
	names, err := apps.Names(appsDir)
	if err != nil {
		b.Fatal(err)
	}
	topo, err := sites.Load(sites.Options{Dir: l.ConfigDir, Env: "lab", Environ: []string{}, KnownStacks: append(names, sites.KnownStacks...)})
	if err != nil {
		b.Fatal(err)
	}
	list, ps := apps.Load(apps.Options{Dir: appsDir, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		b.Fatal(ps)
	}
	topo.Apps = list
	labreach.Install(topo)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	b.Cleanup(cancel)
	b.Cleanup(func() { removeStacks(b, topo, names) })

	// deploy --all: every part of every site, the apps among the stacks.
	opts := deploy.Options{Environ: []string{}}
	deployAll := func() (time.Duration, int) {
		start := time.Now()
		applied := 0
		for _, r := range deploy.Deploy(ctx, topo, topo.Sites, deploy.Parts(opts), opts) {
			if r.Err() != nil {
				b.Fatalf("deploy %s: %v", r.Site, r.Err())
			}
			applied += len(r.Applied)
		}
		return time.Since(start), applied
	}
	first, _ := deployAll()
	before := serviceVersions(ctx, b, topo)
	appServices := 0
	for name := range before {
		if _, svc, _ := strings.Cut(name, "/"); strings.HasPrefix(svc, "gen") {
			appServices++
		}
	}
	if appServices != 40 {
		b.Fatalf("%d app services after the first deploy, want 40: %v", appServices, before)
	}
	noop, applied := deployAll()
	updated := 0
	for name, v := range serviceVersions(ctx, b, topo) {
		if v != before[name] {
			updated++
			b.Errorf("the no-op deploy updated %s (version %d → %d)", name, before[name], v)
		}
	}
	if applied != 0 {
		b.Errorf("the no-op deploy applied %d steps, want 0", applied)
	}
	b.Logf("deploy --all with 20 apps (%d services, 40 of them the apps') on 3 sites: first %s; no-op %s (%.1f%% of the first), %d steps applied, %d services updated",
		len(before), first.Round(100*time.Millisecond), noop.Round(100*time.Millisecond), 100*noop.Seconds()/first.Seconds(), applied, updated)
	b.ReportMetric(first.Seconds(), "first-deploy-s")
	b.ReportMetric(noop.Seconds(), "noop-deploy-s")
	b.ReportMetric(100*noop.Seconds()/first.Seconds(), "noop-%-of-first")
	b.ReportMetric(float64(updated), "noop-service-updates")

	for _, part := range deploy.Parts(opts) {
		start := time.Now()
		p := deploy.Plan(ctx, topo, topo.Sites, []plan.Part{part}, opts)
		b.Logf("plan of part %s alone: %s (%d changes)", part.Name(), time.Since(start).Round(10*time.Millisecond), p.Changes())
	}
	planAll := func() string {
		var out, errb bytes.Buffer
		root := newRootCommand(Streams{In: strings.NewReader(""), Out: &out, Err: &errb}, []string{})
		root.SetArgs([]string{"--config-dir", l.ConfigDir, "--env", "lab", "--apps-dir", appsDir, "plan", "--all"})
		err := root.ExecuteContext(ctx)
		var exit *ExitError
		if err != nil && (!errors.As(err, &exit) || exit.Code != 2) { // 2: changes pending
			b.Fatalf("plan --all: %v\n%s%s", err, out.String(), errb.String())
		}
		return out.String()
	}
	if out := planAll(); strings.Contains(out, "service gen") {
		b.Errorf("plan --all after the deploys changes an app's service:\n%s", out)
	}
	b.ResetTimer()
	for b.Loop() {
		planAll()
	}
}

// serviceVersions returns the version of each service at each site
// ("site/service").
func serviceVersions(ctx context.Context, b *testing.B, topo *sites.Topology) map[string]uint64 {
	b.Helper()
	out := map[string]uint64{}
	for _, s := range topo.Sites {
		c, err := engine.ForSite(ctx, s)
		if err != nil {
			b.Fatal(err)
		}
		res, err := c.ServiceList(ctx, client.ServiceListOptions{})
		_ = c.Close()
		if err != nil {
			b.Fatal(err)
		}
		for _, svc := range res.Items {
			out[s.Name+"/"+svc.Spec.Name] = svc.Version.Index
		}
	}
	return out
}
