package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli/compose/loader"
	composetypes "github.com/docker/cli/cli/compose/types"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
)

func load(t *testing.T, set ...string) *sites.Topology {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: "../../sites", Env: "dev", Environ: []string{}, Set: set})
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestRenderService(t *testing.T) {
	pki := t.TempDir()
	t.Setenv("TN_SERVICE_PSK", "not-a-real-psk")
	cases := map[string][]string{
		"x509": {"tunnel.pki_dir=" + pki},
		"psk":  {"tunnel.auth=psk", "tunnel.psk.env=TN_SERVICE_PSK"},
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			topo := load(t, set...)
			site := topo.Site("cloud")
			if name == "x509" {
				for _, s := range topo.Sites {
					ca, gw := tunnels.SiteCerts(topo, s)
					if _, _, err := tunnels.Ensure(ca, gw, s.Gateway.ID, s.Tunnel.KeyType, time.Hour*24*30*6); err != nil {
						t.Fatal(err)
					}
				}
			}
			r, secrets, err := Render(topo, site)
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, "cloud-"+name+".compose.yaml", r.Compose)
			if strings.Contains(string(r.Compose), "not-a-real-psk") || strings.Contains(string(r.Compose), "PRIVATE KEY") {
				t.Fatal("a secret value is in the compose file")
			}
			// docker/cli's loader (schema validation, as docker stack deploy) accepts it.
			dict, err := loader.ParseYAML(r.Compose)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for f, b := range r.Files {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := loader.Load(composetypes.ConfigDetails{WorkingDir: dir,
				ConfigFiles: []composetypes.ConfigFile{{Filename: "compose.yaml", Config: dict}}})
			if err != nil {
				t.Fatalf("docker/cli loader: %v", err)
			}
			svc := cfg.Services[0]
			if len(svc.CapAdd) == 0 || svc.CapAdd[0] != "NET_ADMIN" || cfg.Networks["hostnet"].Name != "host" {
				t.Errorf("service lacks NET_ADMIN or host network: %+v", svc)
			}
			for s := range cfg.Secrets {
				if _, ok := secrets[s]; !ok {
					t.Errorf("compose secret %s has no site secret reference", s)
				}
			}
		})
	}
}

func TestRenderServiceRefusesLibipsec(t *testing.T) {
	topo := load(t, "tunnel.ipsec=libipsec")
	_, _, err := Render(topo, topo.Site("douala"))
	if err == nil || !strings.Contains(err.Error(), "/dev/net/tun") {
		t.Fatalf("err = %v", err)
	}
}
