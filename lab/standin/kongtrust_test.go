package main

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHealthCheckTrust: an HTTPS active health check with https_verify_certificate
// verifies the target against lua_ssl_trusted_certificate, as Kong's health checker
// does: a target whose CA is listed turns healthy, one signed by a CA that is only
// in the system store's absence stays unhealthy; verification off ignores the CA.
func TestHealthCheckTrust(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")
	for _, tc := range []struct {
		name    string
		trusted string
		verify  bool
		want    bool // healthy after the probes
	}{
		{name: "the CA listed", trusted: "system," + caFile, verify: true, want: true},
		{name: "the CA alone", trusted: caFile, verify: true, want: true},
		{name: "system store only (Kong's default)", trusted: "", verify: true, want: false},
		{name: "verification off", trusted: "", verify: false, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			roots, err := trustedRoots(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			w := 100
			u := kongUpstream{Name: "u", Targets: []kongTarget{{Target: addr, Weight: &w}}}
			u.Healthchecks.Active = kongActive{Type: "https", HTTPPath: "/", Timeout: 2, HTTPSVerifyCertificate: tc.verify,
				Healthy:   kongCounters{HTTPStatuses: []int{200}, Successes: 2},
				Unhealthy: kongCounters{HTTPStatuses: []int{500}, TCPFailures: 2, HTTPFailures: 3, Timeouts: 3}}
			b := newBalancer(u, nil)
			b.roots = roots
			b.resolve(context.Background())
			// Start from unhealthy so that only successful probes make it healthy.
			for range 2 {
				b.report(addr, outTCPFailure, u.Healthchecks.Active.Healthy, u.Healthchecks.Active.Unhealthy)
			}
			for range 3 {
				b.probe(context.Background(), addr)
			}
			if got := b.snapshot()[0].Healthy; got != tc.want {
				t.Errorf("healthy %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := trustedRoots("system,/nonexistent/ca.pem"); err == nil {
		t.Error("a missing CA file: no error")
	}
}
