package tunnels

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestEnsureServer: a server certificate is issued with its DNS and IP names, verifies
// against the CA for each of them, is left alone when unchanged and reissued when a
// name is added.
func TestEnsureServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kong")
	p := PKI{Dir: dir, CAName: "sitectl kong CA"}
	c := ServerCert{ID: "kong-cloud", DNS: []string{"admin.hub"}, IPs: []net.IP{net.ParseIP("10.30.0.11")}}
	caSt, st, err := EnsureServer(p, p, c, "ecdsa-p256", 365*24*time.Hour)
	if err != nil || caSt.State != "created" || st.State != "created" {
		t.Fatalf("first ensure: %v %v %v", caSt, st, err)
	}
	ca := readPEM(t, p.CAPath())
	cert := readPEM(t, p.CertPath(c.ID))
	if ca.Subject.CommonName != "sitectl kong CA" {
		t.Errorf("CA name %q", ca.Subject.CommonName)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"kong-cloud", "admin.hub", "10.30.0.11"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "10.30.0.12"}); err == nil {
		t.Error("verifies for an address it does not name")
	}
	if fi, err := os.Stat(p.KeyPath(c.ID)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key %v %v", fi, err)
	}
	if _, st, err = EnsureServer(p, p, c, "ecdsa-p256", 365*24*time.Hour); err != nil || st.State != "ok" {
		t.Errorf("unchanged: %v %v", st, err)
	}
	c.IPs = append(c.IPs, net.ParseIP("10.30.0.12"))
	if _, st = CheckServer(p, p, c); st.State != "invalid" || st.Problem != "does not name 10.30.0.12" {
		t.Errorf("a new node: %+v", st)
	}
	if _, st, err = EnsureServer(p, p, c, "ecdsa-p256", 365*24*time.Hour); err != nil || st.State != "renewed" {
		t.Errorf("reissue: %v %v", st, err)
	}
	if got := readPEM(t, p.CertPath(c.ID)); len(got.IPAddresses) != 2 {
		t.Errorf("reissued with %v", got.IPAddresses)
	}
}

func readPEM(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
