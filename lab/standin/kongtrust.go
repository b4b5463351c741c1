package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"
)

// trustedRoots is the CA pool Kong verifies upstream certificates against in active
// health checks (healthchecks.active.https_verify_certificate): Kong's
// lua_ssl_trusted_certificate (KONG_LUA_SSL_TRUSTED_CERTIFICATE), a comma-separated
// list of PEM files in which the word "system" is the operating system's store;
// "system" when unset (Kong 3.x's default). The health checker's handshake is an
// OpenResty cosocket handshake, verified against that directive only: a service's
// ca_certificates apply to proxied requests, not to health checks.
func trustedRoots(setting string) (*x509.CertPool, error) {
	var entries []string
	for _, f := range strings.Split(setting, ",") {
		if f = strings.TrimSpace(f); f != "" {
			entries = append(entries, f)
		}
	}
	if len(entries) == 0 {
		entries = []string{"system"}
	}
	pool := x509.NewCertPool()
	if slices.Contains(entries, "system") {
		sys, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("lua_ssl_trusted_certificate: the system store: %w", err)
		}
		pool = sys
	}
	for _, f := range entries {
		if f == "system" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("lua_ssl_trusted_certificate: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("lua_ssl_trusted_certificate: %s holds no PEM certificate", f)
		}
	}
	return pool, nil
}
