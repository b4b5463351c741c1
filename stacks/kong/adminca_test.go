package kong_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

func writeCert(t *testing.T, isCA bool) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub kong CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAdminCA: with values.kong.admin.ca naming a secret that holds a CA, a spoke's
// /admin upstream verifies the hub's certificate against it (tls_verify, the CA as
// a ca_certificate, health checks verifying too) and kong.yml validates; without
// it, against sitectl's Kong CA; with values.kong.admin.tls_verify: false, not at
// all; a secret that is not a CA is refused naming the key.
func TestAdminCA(t *testing.T) {
	// upstreamCA is the CA the health checks trust (lua_ssl_trusted_certificate):
	// Kong's health checker does not use a service's ca_certificates.
	var upstreamCA string
	render := func(set ...string) (string, error) {
		topo := stacktest.Load(t, "dev", set...)
		r, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
		upstreamCA = string(r.Files[kong.UpstreamCAFile])
		return string(r.Files["kong.yml"]), err
	}
	def, err := render()
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := os.ReadFile(filepath.Join(stacktest.RepoRoot(t), "stacks/stacktest/testdata/pki/kong/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(def, "tls_verify: true") || !strings.Contains(def, indent(string(fixture))) {
		t.Errorf("without values.kong.admin.ca, want sitectl's Kong CA:\n%s", def)
	}
	if strings.TrimSpace(upstreamCA) != strings.TrimSpace(string(fixture)) {
		t.Errorf("the health checks' CA is %q, want sitectl's Kong CA", upstreamCA)
	}
	off, err := render("douala:values.kong.admin.tls_verify=false")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(off, "tls_verify: false") || strings.Contains(off, "ca_certificates") {
		t.Errorf("with values.kong.admin.tls_verify false:\n%s", off)
	}
	if upstreamCA != "" {
		t.Errorf("with values.kong.admin.tls_verify false, the health checks still get a CA")
	}
	ca := writeCert(t, true)
	on, err := render("douala:secrets.kong-admin-ca.file="+ca, "douala:values.kong.admin.ca=kong-admin-ca")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(on, indent(string(fixture))) || upstreamCA == "" || strings.Contains(upstreamCA, strings.TrimSpace(string(fixture))) {
		t.Errorf("the operator's CA does not win over sitectl's:\n%s", on)
	}
	for _, want := range []string{"tls_verify: true", "ca_certificates:", "-----BEGIN CERTIFICATE-----", "https_verify_certificate: true"} {
		if !strings.Contains(on, want) {
			t.Errorf("with values.kong.admin.ca: no %q in\n%s", want, on)
		}
	}
	if err := kong.Validate([]byte(on)); err != nil {
		t.Errorf("kong.yml with the CA does not validate: %v", err)
	}
	_, err = render("douala:secrets.kong-admin-ca.file="+writeCert(t, false), "douala:values.kong.admin.ca=kong-admin-ca")
	if err == nil || !strings.Contains(err.Error(), "values.kong.admin.ca") || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("a leaf certificate as admin.ca: %v, want a refusal naming values.kong.admin.ca", err)
	}
	_, err = render("douala:values.kong.admin.ca=no-such-secret")
	if err == nil || !strings.Contains(err.Error(), "secrets.no-such-secret") {
		t.Errorf("an unnamed secret as admin.ca: %v, want a refusal naming the fix", err)
	}
}

// indent is a PEM block as kong.yml holds it (a literal block indented by 6).
func indent(pemText string) string {
	lines := strings.Split(strings.TrimSpace(pemText), "\n")
	return "      " + strings.Join(lines, "\n      ")
}
