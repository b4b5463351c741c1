package apps_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestExampleApps loads the repository's worked example (apps/ next to sites/: the
// nginx front-end at every site, the Django identity provider at the hub) in every
// environment: where each runs, the image each takes from the sites' images.<name>,
// and, in production, the rendered stacks and each site's kong.yml (goldens).
func TestExampleApps(t *testing.T) {
	root := stacktest.RepoRoot(t)
	dir := filepath.Join(root, "apps")
	for _, env := range []string{"dev", "staging", "production"} {
		t.Run(env, func(t *testing.T) {
			topo := stacktest.WithApps(t, stacktest.Load(t, env), dir)
			names := []string{}
			for _, a := range topo.Apps {
				names = append(names, a.Name)
			}
			if strings.Join(names, " ") != "frontend identity" {
				t.Fatalf("example apps %v, want frontend identity", names)
			}
			front, idp := topo.App("frontend"), topo.App("identity")
			if len(front.Sites) != 3 || front.Sites["cloud"].Replicas != 2 || front.Sites["douala"].Replicas != 1 {
				t.Errorf("frontend sites %+v, want every site, 2 replicas at cloud", front.Sites)
			}
			for sn, as := range front.Sites {
				if want := topo.Site(sn).Images["nginx"]; as.Image != want || want == "" {
					t.Errorf("frontend at %s runs %q, want the site's images.nginx %q", sn, as.Image, want)
				}
			}
			if len(idp.Sites) != 1 || idp.Sites[topo.Hub].Image != topo.Site(topo.Hub).Images["django-api"] {
				t.Errorf("identity sites %+v, want the hub only, on the API's image", idp.Sites)
			}
			if len(idp.Routes) != 1 || idp.Routes[0].Path != "/auth" || idp.Routes[0].At != "hub" || idp.MetricsPath != "/auth/metrics" {
				t.Errorf("identity %+v", idp)
			}
			if env != "production" {
				return
			}
			for _, s := range topo.Sites {
				in := stacks.Input{Topo: topo, Site: s}
				for _, a := range topo.AppsAt(s.Name) {
					r, err := stacks.RenderApp(in, a)
					if err != nil {
						t.Fatal(err)
					}
					// The header names the compose file: relative to the repository, so the
					// golden does not depend on where the clone is.
					golden.Assert(t, "example/"+s.Name+"-"+a.Name+".yaml", bytes.ReplaceAll(r.Compose, []byte(root+string(filepath.Separator)), nil))
					if _, err := stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{References: true}); err != nil {
						t.Errorf("%s/%s: %v", s.Name, a.Name, err)
					}
				}
				r, err := kong.Stack{}.Render(in)
				if err != nil {
					t.Fatal(err)
				}
				golden.Assert(t, "example/"+s.Name+"-kong.yml", r.Files["kong.yml"])
			}
		})
	}
}

// TestSiteImageRefused: an app image naming a site image the site does not have is
// refused with the app's file, the key, the site and the fix.
func TestSiteImageRefused(t *testing.T) {
	dir := t.TempDir()
	body := "services:\n  web:\n    image: x/web:1\nx-sitectl:\n  image: images.nope\n"
	if err := os.MkdirAll(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web", "compose.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := stacktest.Load(t, "dev")
	list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo, Environ: []string{}})
	if list != nil || len(ps) != len(topo.Sites) {
		t.Fatalf("apps %v, problems %v; want one problem per site", list, ps)
	}
	for _, p := range ps {
		if !strings.HasSuffix(p.File, "web/compose.yaml") || p.Key != "x-sitectl.image" || p.Site == "" ||
			!strings.Contains(p.Message, "names the site image nope") || !strings.Contains(p.Message, "add images.nope to defaults.yaml") {
			t.Errorf("problem %s", p)
		}
	}
}
