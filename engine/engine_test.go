package engine

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/sites"
)

func TestEndpointErrors(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	tests := []struct {
		name string
		ep   Endpoint
		want string
	}{
		{"nothing", Endpoint{}, "set engine.host or engine.context"},
		{"missing context", Endpoint{Context: "nope"}, `docker context "nope"`},
		{"missing tls file", Endpoint{Host: "tcp://127.0.0.1:1", CACert: "/nonexistent/ca.pem"}, "read TLS file"},
		{"dead socket", Endpoint{Host: "unix:///nonexistent/docker.sock"}, "does not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.ep)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNodeEndpoint(t *testing.T) {
	s := &sites.Site{Engine: sites.Engine{Host: "ssh://ops@mgr", APIVersion: "1.41"}}
	own := sites.Node{Name: "db", Engine: "unix:///run/db.sock"}
	viaSite := sites.Node{Name: "app"}
	if got := NodeEndpoint(s, &own); got.Host != "unix:///run/db.sock" || got.APIVersion != "1.41" {
		t.Errorf("own engine: got %+v", got)
	}
	if got := NodeEndpoint(s, &viaSite); got.Host != "ssh://ops@mgr" {
		t.Errorf("site engine: got %+v", got)
	}
}

// fakeEngine serves the Engine API on a unix socket as a dockerd speaking apiVersion
// does (the lab's dockerd 20.10 speaks 1.41) and records the request paths.
func fakeEngine(t *testing.T, apiVersion string) (host string, paths func() []string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		w.Header().Set("Api-Version", apiVersion)
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			_, _ = w.Write([]byte("OK"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ID":"fake","ServerVersion":"20.10.24"}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "unix://" + sock, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// TestNegotiatesLabAPIVersion: the client (whose newest API is client.MaxAPIVersion)
// talks to a dockerd that speaks only 1.41 by negotiating down to 1.41, and an engine
// older than the client's minimum is refused with a clear error.
func TestNegotiatesLabAPIVersion(t *testing.T) {
	host, paths := fakeEngine(t, "1.41")
	c, err := New(context.Background(), Endpoint{Host: host})
	if err != nil {
		t.Fatalf("New against an API 1.41 engine: %v", err)
	}
	defer func() { _ = c.Close() }()
	if got := c.ClientVersion(); got != "1.41" {
		t.Errorf("negotiated version = %q, want 1.41 (client max %s, min %s)", got, client.MaxAPIVersion, client.MinAPIVersion)
	}
	if _, err := c.Info(context.Background(), client.InfoOptions{}); err != nil {
		t.Fatalf("Info: %v", err)
	}
	if p := paths(); len(p) == 0 || p[len(p)-1] != "/v1.41/info" {
		t.Errorf("request paths = %q, want the last to be /v1.41/info", p)
	}

	pinnedHost, _ := fakeEngine(t, "1.41")
	pc, err := New(context.Background(), Endpoint{Host: pinnedHost, APIVersion: "1.41"})
	if err != nil {
		t.Fatalf("New with engine.apiVersion 1.41: %v", err)
	}
	defer func() { _ = pc.Close() }()
	if got := pc.ClientVersion(); got != "1.41" {
		t.Errorf("pinned version = %q, want 1.41", got)
	}

	oldHost, _ := fakeEngine(t, "1.24")
	if oc, err := New(context.Background(), Endpoint{Host: oldHost}); err == nil {
		_ = oc.Close()
		t.Errorf("New against an API 1.24 engine succeeded, want an error naming the minimum %s", client.MinAPIVersion)
	} else if !strings.Contains(err.Error(), "minimum supported API version") {
		t.Errorf("err = %v, want it to name the minimum supported API version", err)
	}
}
