package deploy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestAppStatus: status lists the apps each site declares (the example apps/):
// running, degraded or not deployed from the site's services, with their image and
// routes; an app another site runs is not listed. Golden of the text table.
func TestAppStatus(t *testing.T) {
	topo := stacktest.WithApps(t, stacktest.Load(t, "production"), filepath.Join(stacktest.RepoRoot(t), "apps"))
	now := time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)
	services := []ServiceStatus{
		{Name: "frontend_web", Stack: "frontend", Running: 2, Desired: 2, Image: "nginx:1.22.1", UpdatedAt: now.Add(-time.Minute), Managed: true},
		{Name: "identity_idp", Stack: "identity", Running: 0, Desired: 1, Image: "registry.example.com/sitectl/django-api:1.0.0", UpdatedAt: now.Add(-time.Minute), Managed: true},
		{Name: "django-api_api", Stack: "django-api", Running: 3, Desired: 3, Image: "registry.example.com/sitectl/django-api:1.0.0", UpdatedAt: now.Add(-time.Hour), Managed: true},
	}
	cloud := appStatus(topo, "cloud", services)
	douala := appStatus(topo, "douala", nil)
	if len(cloud) != 2 || cloud[0].State != AppRunning || cloud[0].Running != 2 || cloud[1].State != AppDegraded {
		t.Errorf("cloud apps %+v, want frontend running 2/2, identity degraded", cloud)
	}
	if len(douala) != 1 || douala[0].Name != "frontend" || douala[0].State != AppNotDeployed {
		t.Errorf("douala apps %+v, want frontend only, not deployed", douala)
	}
	if strings.Join(cloud[1].Routes, " ") != "/auth (hub)" || strings.Join(cloud[0].Routes, " ") != "/" {
		t.Errorf("routes %v %v", cloud[0].Routes, cloud[1].Routes)
	}
	var b strings.Builder
	all := []SiteStatus{{Site: "cloud", Swarm: "active", Services: services, Apps: cloud}, {Site: "douala", Swarm: "active", Apps: douala}}
	if err := RenderStatus(&b, all, now); err != nil {
		t.Fatal(err)
	}
	golden.AssertString(t, "status-apps.golden", b.String())
}
