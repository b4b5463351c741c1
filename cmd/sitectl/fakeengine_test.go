package main

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// fakeEngine serves, on a unix socket, a Docker engine that is not in a swarm yet:
// /_ping and /info answer; anything else is a 404 (planning a site without a swarm
// reads nothing else). It returns the engine.host to point a site at.
func fakeEngine(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			_, _ = w.Write([]byte("OK")) // the client reports a short answer
		case strings.HasSuffix(r.URL.Path, "/info"):
			_, _ = w.Write([]byte(`{"ID":"fake","Name":"fake","ServerVersion":"20.10.24","Swarm":{"LocalNodeState":"inactive"}}`))
		default:
			http.Error(w, `{"message":"not in the fake"}`, http.StatusNotFound)
		}
	})}
	go func() { _ = srv.Serve(l) }() // returns ErrServerClosed at clean-up
	t.Cleanup(func() { _ = srv.Close() })
	return "unix://" + sock
}
