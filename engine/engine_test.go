package engine

import (
	"context"
	"strings"
	"testing"

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
