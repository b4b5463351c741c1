package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/deploy"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/swarm"
	"github.com/sitectl/sitectl/traffic"
	"github.com/sitectl/sitectl/tunnels"
)

// exampleApps is the repository's apps/ folder (the worked example's apps).
const exampleApps = "../../apps"

// TestLabAppsThroughGateway deploys Kong (with its certificate, which a spoke's
// Kong verifies when it forwards to the hub's) and the example apps (apps/: the
// nginx front-end at every site, the Django identity provider at the hub) with the
// tunnels on the shared lab, and proves each app's route answers at each site
// THROUGH the site's gateway (the lab's routing Kong stand-in, over HTTPS at the
// site's Kong nodes): `/` is the front-end's page (served by the site's own
// front-end); at the hub `/auth/token` issues a token (201) and `/auth/verify`
// verifies it and refuses a forged one (served by the identity provider), at the
// spokes too: their Kong forwards `/auth` to the hub's over TLS, its health checks
// verifying the hub's certificate with sitectl's CA (lua_ssl_trusted_certificate).
// The apps' stacks are removed at the end.
func TestLabAppsThroughGateway(t *testing.T) {
	l := labtest.Shared(t)
	names, err := apps.Names(exampleApps)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := sites.Load(sites.Options{Dir: l.ConfigDir, Env: "lab", Environ: []string{}, KnownStacks: append(names, sites.KnownStacks...)})
	if err != nil {
		t.Fatal(err)
	}
	list, ps := apps.Load(apps.Options{Dir: exampleApps, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	labreach.Install(topo)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	t.Cleanup(cancel)
	t.Cleanup(func() { removeStacks(t, topo, names) })
	start := time.Now()
	for _, r := range deploy.Deploy(ctx, topo, topo.Sites, []plan.Part{swarm.Part{}, kong.CertPart{}, deploy.Stacks, deploy.Apps, tunnels.Part{}},
		deploy.Options{Environ: []string{}, Stacks: append([]string{"kong"}, names...)}) {
		if r.Err() != nil {
			t.Fatalf("deploy %s: %v", r.Site, r.Err())
		}
	}
	t.Logf("deploy of kong, the tunnels and the example apps: %s", time.Since(start).Round(100*time.Millisecond))

	for _, s := range topo.Sites {
		e, err := traffic.EntryOf(topo, s)
		if err != nil {
			t.Fatal(err)
		}
		c := e.Client(10*time.Second, 2)
		url := e.URLs[0]
		t.Run(s.Name+" / → front-end", func(t *testing.T) {
			code, body, hdr := gatewayGet(ctx, t, c, http.MethodGet, url+"/", "", "", func(code int, body string) bool {
				return code == http.StatusOK && strings.Contains(body, "sitectl example front-end")
			})
			if code != http.StatusOK || !strings.Contains(body, "sitectl example front-end") || hdr.Get("X-Sitectl-Standin") != "kong" {
				t.Errorf("GET / through %s's gateway: %d %q (headers %v), want the front-end's page through the Kong stand-in", s.Name, code, trim(body), hdr)
			}
		})
		t.Run(s.Name+" /auth → identity", func(t *testing.T) {
			code, body, _ := gatewayGet(ctx, t, c, http.MethodPost, url+"/auth/token", `{"user": "alice"}`, "", func(code int, _ string) bool { return code == http.StatusCreated })
			_, rest, ok := strings.Cut(body, `"token": "`)
			token, _, ok2 := strings.Cut(rest, `"`)
			if code != http.StatusCreated || !ok || !ok2 || token == "" {
				t.Fatalf("POST /auth/token through %s's gateway: %d %q, want a token", s.Name, code, trim(body))
			}
			code, body, _ = gatewayGet(ctx, t, c, http.MethodGet, url+"/auth/verify", "", token, func(code int, _ string) bool { return code == http.StatusOK })
			if code != http.StatusOK || !strings.Contains(body, `"sub": "alice"`) {
				t.Errorf("GET /auth/verify through %s's gateway: %d %q, want alice", s.Name, code, trim(body))
			}
			if code, _, _ := gatewayGet(ctx, t, c, http.MethodGet, url+"/auth/verify", "", "x"+token, nil); code != http.StatusUnauthorized {
				t.Errorf("GET /auth/verify of a forged token through %s's gateway: %d, want 401", s.Name, code)
			}
		})
	}
}

// gatewayGet sends one request through a gateway, retrying for up to 2 minutes
// (Kong's first health probes, a forwarded route's tunnel) until done says the
// answer is the one wanted (nil: the first answer).
func gatewayGet(ctx context.Context, t *testing.T, c *http.Client, method, url, body, bearer string, done func(int, string) bool) (int, string, http.Header) {
	t.Helper()
	var (
		code int
		text string
		hdr  http.Header
	)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			code, text, hdr, err = resp.StatusCode, string(b), resp.Header, rerr
		}
		if err == nil && (done == nil || done(code, text)) || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("%s %s: %v", method, url, err)
			}
			return code, text, hdr
		}
	}
}

// removeStacks removes the named stacks at every site with the docker CLI, so the
// shared lab is left as other tests expect it.
func removeStacks(t testing.TB, topo *sites.Topology, names []string) {
	for _, s := range topo.Sites {
		cmd := exec.Command("docker", append([]string{"stack", "rm"}, names...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+engine.SiteEndpoint(s).Host)
		if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "Nothing found in stack") {
			t.Logf("%s: docker stack rm %s: %v\n%s", s.Name, strings.Join(names, " "), err, out)
		}
	}
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
