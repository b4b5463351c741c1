package apps_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// orderApp is an app's compose file starting after the apps named.
func orderApp(after string) string {
	return "services:\n  web:\n    image: x/web:1\nx-sitectl:\n  sites: [douala]\n" + after
}

// TestAfter: x-sitectl.after is kept on the app; an unknown app, the app itself
// and a cycle are each refused with ONE problem naming the app's file and the key.
func TestAfter(t *testing.T) {
	topo := stacktest.Load(t, "dev")
	dir := writeApps(t, map[string]string{"api/compose.yaml": orderApp("  after: [db]\n"), "db/compose.yaml": orderApp(""), "web/compose.yaml": orderApp("  after: [api, db]\n")})
	list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	got := map[string][]string{}
	for _, a := range list {
		got[a.Name] = a.After
	}
	if !slices.Equal(got["web"], []string{"api", "db"}) || !slices.Equal(got["api"], []string{"db"}) || got["db"] != nil {
		t.Errorf("after: %v", got)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		file  string
		msg   string
	}{
		{"unknown app", map[string]string{"api/compose.yaml": orderApp("  after: [dbx]\n"), "db/compose.yaml": orderApp("")}, "api",
			`no app "dbx" in the apps directory (apps: api, db)`},
		{"itself", map[string]string{"api/compose.yaml": orderApp("  after: [api]\n")}, "api", "app api cannot start after itself"},
		{"cycle", map[string]string{"api/compose.yaml": orderApp("  after: [web]\n"), "db/compose.yaml": orderApp("  after: [api]\n"), "web/compose.yaml": orderApp("  after: [db]\n")}, "api",
			"the apps' start order has a cycle: api → web → db → api"},
		{"not a list", map[string]string{"api/compose.yaml": orderApp("  after: db\n"), "db/compose.yaml": orderApp("")}, "api", "after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, ps := apps.Load(apps.Options{Dir: writeApps(t, tc.files), Topo: topo, Environ: []string{}})
			if list != nil || len(ps) != 1 {
				t.Fatalf("apps %v, problems %v: want one problem", list, ps)
			}
			p := ps[0]
			key := "x-sitectl.after"
			if tc.name == "not a list" {
				key = "x-sitectl"
			}
			if !strings.HasSuffix(p.File, filepath.Join(tc.file, "compose.yaml")) || p.Key != key || !strings.Contains(p.Message, tc.msg) {
				t.Errorf("problem %s (key %q), want %s/compose.yaml, key %s, ~%q", p, p.Key, tc.file, key, tc.msg)
			}
		})
	}
}

// TestEndpointModeFollowsSite: an app's entry service that sets no
// deploy.endpoint_mode gets the site's (dnsrr where the kernel has no IPVS, as in
// the lab, where Kong could not reach an app's virtual IP), like the built-in
// stacks' services; one that sets its own keeps it.
func TestEndpointModeFollowsSite(t *testing.T) {
	topo := stacktest.Load(t, "dev", "douala:deploy.endpoint_mode=dnsrr", "douala:deploy.publish_mode=host")
	dir := writeApps(t, map[string]string{"api/compose.yaml": orderApp(""),
		"own/compose.yaml": "services:\n  web:\n    image: x/web:1\n    deploy: {endpoint_mode: vip}\nx-sitectl:\n  sites: [douala, yaounde]\n"})
	topo = stacktest.WithApps(t, topo, dir)
	for _, tc := range []struct{ app, site, want string }{{"api", "douala", "dnsrr"}, {"own", "douala", "vip"}, {"own", "yaounde", "vip"}} {
		a := topo.App(tc.app)
		r, err := stacks.RenderApp(stacks.Input{Topo: topo, Site: topo.Site(tc.site)}, a)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.EndpointModeAt(topo.Site(tc.site)); got != tc.want || !strings.Contains(string(r.Compose), "endpoint_mode: "+tc.want) {
			t.Errorf("%s at %s: endpoint mode %s, want %s in\n%s", tc.app, tc.site, got, tc.want, r.Compose)
		}
	}
}
