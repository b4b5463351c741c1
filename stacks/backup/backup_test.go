package backup_test

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	bkstack "github.com/sitectl/sitectl/stacks/backup"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// layout is the design's backup layout: the hub backs up both spokes, douala the hub.
var layout = []string{"cloud:stacks=postgres,backup", "douala:stacks=postgres,backup",
	"douala:backup.server=cloud", "yaounde:backup.server=cloud", "cloud:backup.server=douala"}

// TestRenderBackupStack: the Barman server of each backup site, for production and
// the lab: docker/cli's loader and the deploy engine's conversion accept it; goldens
// of the compose file and every Barman configuration file; one volume and one
// password secret per backed-up site, the password never in a file.
func TestRenderBackupStack(t *testing.T) {
	for _, env := range []string{"production", "lab"} {
		topo := stacktest.Load(t, env, layout...)
		for _, server := range []string{"cloud", "douala"} {
			t.Run(env+"/"+server, func(t *testing.T) {
				in := stacks.Input{Topo: topo, Site: topo.Site(server)}
				r, err := bkstack.Stack{}.Render(in)
				if err != nil {
					t.Fatal(err)
				}
				cfg := stacktest.LoadCompose(t, r)
				d := stacktest.Convert(t, in, r)
				golden.Assert(t, env+"/"+server+"/compose.yml", r.Compose)
				for name, b := range r.Files {
					golden.Assert(t, env+"/"+server+"/"+name, b)
					if strings.Contains(string(b), "test-value") {
						t.Errorf("%s holds a secret value", name)
					}
				}
				want := map[string][]string{"cloud": {"douala", "yaounde"}, "douala": {"cloud"}}[server]
				if len(cfg.Volumes) != len(want) || len(r.Secrets) != len(want) || len(cfg.Services) != 1 {
					t.Fatalf("volumes %v, secrets %v: want one each for %v", cfg.Volumes, r.Secrets, want)
				}
				for _, s := range want {
					if _, ok := cfg.Volumes["barman-"+s]; !ok {
						t.Errorf("no volume barman-%s", s)
					}
					if ref := r.Secrets["barman-password-"+s]; ref.Env != "SITECTL_BACKUP_PASSWORD" {
						t.Errorf("secret barman-password-%s refers to %v", s, ref)
					}
				}
				if d == nil {
					t.Fatal("no conversion")
				}
			})
		}
	}
}

// TestBackupStackRefusesNoTargets: a site that runs the stack but backs up no one
// gets one error saying how to fix it.
func TestBackupStackRefusesNoTargets(t *testing.T) {
	topo := stacktest.Load(t, "production", "yaounde:stacks=postgres,backup")
	_, err := bkstack.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("yaounde")})
	if err == nil || !strings.Contains(err.Error(), "site yaounde runs the backup stack but no site names it as backup.server") {
		t.Fatalf("want the refusal, got %v", err)
	}
}
