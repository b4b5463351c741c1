package tunnels

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sitectl/sitectl/sites"
)

// ExpiryWarning is how long before expiry a certificate is reported as expiring.
const ExpiryWarning = 30 * 24 * time.Hour

// caLifetime is the CA's validity; gateway certificates use tunnel.cert_lifetime.
const caLifetime = 10 * 365 * 24 * time.Hour

// PKI is a directory holding the CA and gateway certificates with their private keys
// (0600, directory 0700). It lives outside the repository (tunnel.pki_dir).
type PKI struct {
	Dir string
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
	// CAName is the CA's common name ("sitectl tunnels CA" when empty).
	CAName string
}

func (p PKI) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Paths of the CA and gateway files inside a PKI directory.
func (p PKI) caCert() string          { return filepath.Join(p.Dir, "ca.crt") }
func (p PKI) caKey() string           { return filepath.Join(p.Dir, "ca.key") }
func (p PKI) gwCert(id string) string { return filepath.Join(p.Dir, id+".crt") }
func (p PKI) gwKey(id string) string  { return filepath.Join(p.Dir, id+".key") }

// CertPath is the certificate file of gateway id.
func (p PKI) CertPath(id string) string { return p.gwCert(id) }

// CertStatus is a certificate's state in a CertState; its value is how reports
// name it.
type CertStatus string

// Certificate states: Check reports the first five, Ensure the last two for what
// it made.
const (
	CertMissing  CertStatus = "missing"
	CertOK       CertStatus = "ok"
	CertExpiring CertStatus = "expiring" // within ExpiryWarning
	CertExpired  CertStatus = "expired"
	CertInvalid  CertStatus = "invalid"
	CertCreated  CertStatus = "created"
	CertRenewed  CertStatus = "renewed"
)

// CertState is what `tunnels certs` and plans report about one certificate.
type CertState struct {
	Name     string     `json:"name"` // "ca" or the gateway id
	Site     string     `json:"site,omitempty"`
	Path     string     `json:"path"`
	State    CertStatus `json:"state"`
	NotAfter time.Time  `json:"not_after,omitzero"`
	Problem  string     `json:"problem,omitempty"`
}

// SiteCerts is where a site's gateway certificate lives and where the shared CA lives.
// The CA is kept in the hub's pki_dir; each gateway's certificate and key in its own
// site's pki_dir (the same directory unless configured otherwise).
func SiteCerts(topo *sites.Topology, s *sites.Site) (ca, gw PKI) {
	hub := topo.HubSite()
	caDir := s.Tunnel.PKIDir
	if hub != nil {
		caDir = hub.Tunnel.PKIDir
	}
	return PKI{Dir: caDir}, PKI{Dir: s.Tunnel.PKIDir}
}

// Credentials are a gateway's loaded certificate material.
type Credentials struct {
	CA      *x509.Certificate
	CADER   []byte
	Cert    *x509.Certificate
	CertDER []byte
	// KeyDER is the PKCS#8 private key. Never print or log it.
	KeyDER []byte
}

// Load reads and checks the CA and a gateway's certificate and key: chain, SAN,
// key match, permissions and expiry (expired is an error; expiring within 30 days is
// returned as a warning).
func Load(ca, gw PKI, id string) (*Credentials, string, error) {
	c := &Credentials{}
	var err error
	if c.CA, c.CADER, err = readCert(ca.caCert()); err != nil {
		return nil, "", err
	}
	if c.Cert, c.CertDER, err = readCert(gw.gwCert(id)); err != nil {
		return nil, "", err
	}
	if c.KeyDER, err = readKey(gw.gwKey(id)); err != nil {
		return nil, "", err
	}
	st := gw.check(c.CA, c.Cert, c.KeyDER, id)
	switch st.State {
	case CertExpired, CertInvalid:
		return nil, "", fmt.Errorf("certificate %s (%s): %s; run `sitectl tunnels certs` to renew it", id, st.Path, st.Problem)
	case CertExpiring:
		return c, fmt.Sprintf("certificate %s expires %s (%s); run `sitectl tunnels certs` to renew it", id, st.NotAfter.Format(time.DateOnly), st.Problem), nil
	}
	return c, "", nil
}

// Check reports the state of the CA and a gateway certificate without changing anything.
func Check(ca, gw PKI, id string) (caState, gwState CertState) {
	caState = CertState{Name: "ca", Path: ca.caCert(), State: CertMissing}
	gwState = CertState{Name: id, Path: gw.gwCert(id), State: CertMissing}
	caCert, _, err := readCert(ca.caCert())
	if err == nil {
		caState = ca.expiry(caState, caCert)
	} else if !errors.Is(err, fs.ErrNotExist) {
		caState.State, caState.Problem = CertInvalid, err.Error()
	}
	cert, _, err := readCert(gw.gwCert(id))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		gwState.State, gwState.Problem = CertInvalid, err.Error()
		return
	}
	key, err := readKey(gw.gwKey(id))
	if err != nil {
		gwState.State, gwState.Problem, gwState.NotAfter = CertInvalid, err.Error(), cert.NotAfter
		return
	}
	if caCert == nil {
		gwState.State, gwState.Problem, gwState.NotAfter = CertInvalid, "no CA certificate to verify it", cert.NotAfter
		return
	}
	st := gw.check(caCert, cert, key, id)
	return caState, st
}

func (p PKI) expiry(st CertState, c *x509.Certificate) CertState {
	st.NotAfter = c.NotAfter
	left := c.NotAfter.Sub(p.now())
	switch {
	case left <= 0:
		st.State, st.Problem = CertExpired, fmt.Sprintf("expired on %s", c.NotAfter.Format(time.DateOnly))
	case left < ExpiryWarning:
		st.State, st.Problem = CertExpiring, fmt.Sprintf("expires in %d days", int(left.Hours()/24))
	default:
		st.State = CertOK
	}
	return st
}

func (p PKI) check(ca, cert *x509.Certificate, keyDER []byte, id string) CertState {
	st := p.expiry(CertState{Name: id, Path: p.gwCert(id)}, cert)
	if st.State == CertExpired {
		return st
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: id, CurrentTime: p.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		st.State, st.Problem = CertInvalid, "does not verify against the CA for "+id+": "+err.Error()
		return st
	}
	key, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		st.State, st.Problem = CertInvalid, "private key "+p.gwKey(id)+" is not PKCS#8"
		return st
	}
	if pub, ok := key.(*ecdsa.PrivateKey); !ok || !pub.PublicKey.Equal(cert.PublicKey) {
		st.State, st.Problem = CertInvalid, "private key "+p.gwKey(id)+" does not match the certificate"
	}
	return st
}

// Ensure creates the CA when missing and the gateway certificate when missing,
// invalid, expired or expiring within 30 days. It returns what it found or did.
func Ensure(ca, gw PKI, id, keyType string, lifetime time.Duration) (caState, gwState CertState, err error) {
	caState, gwState = Check(ca, gw, id)
	switch caState.State {
	case CertMissing:
		if err := ca.createCA(keyType); err != nil {
			return caState, gwState, err
		}
		caState, gwState = Check(ca, gw, id)
		caState.State = CertCreated
	case CertOK:
	default:
		return caState, gwState, fmt.Errorf("CA %s: %s %s; replace it by hand (every gateway certificate must then be reissued)", caState.Path, caState.State, caState.Problem)
	}
	if gwState.State == CertOK {
		return caState, gwState, nil
	}
	was := gwState.State
	if err := gw.issue(ca, id, keyType, lifetime, []string{id}, nil); err != nil {
		return caState, gwState, err
	}
	_, gwState = Check(ca, gw, id)
	if gwState.State != CertOK {
		return caState, gwState, fmt.Errorf("certificate %s: issued but %s: %s", id, gwState.State, gwState.Problem)
	}
	gwState.State = CertCreated
	if was != CertMissing {
		gwState.State = CertRenewed
	}
	return caState, gwState, nil
}

func newKey(keyType string) (*ecdsa.PrivateKey, error) {
	switch keyType {
	case "ecdsa-p256", "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("key type %q: allowed: ecdsa-p256, ecdsa-p384", keyType)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func (p PKI) createCA(keyType string) error {
	key, err := newKey(keyType)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	now := p.now()
	name := p.CAName
	if name == "" {
		name = "sitectl tunnels CA"
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"sitectl"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	return p.write(p.caCert(), p.caKey(), der, key)
}

// issue signs a certificate for id (CN) with the SANs dns and ips.
func (p PKI) issue(ca PKI, id, keyType string, lifetime time.Duration, dns []string, ips []net.IP) error {
	caCert, _, err := readCert(ca.caCert())
	if err != nil {
		return err
	}
	caDER, err := readKey(ca.caKey())
	if err != nil {
		return fmt.Errorf("CA key: %w", err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(caDER)
	if err != nil {
		return fmt.Errorf("CA key %s: not PKCS#8", ca.caKey())
	}
	key, err := newKey(keyType)
	if err != nil {
		return err
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	if lifetime <= 0 {
		lifetime = 365 * 24 * time.Hour
	}
	now := p.now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: id, Organization: []string{"sitectl"}},
		DNSNames:     dns,
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("issue certificate %s: %w", id, err)
	}
	return p.write(p.gwCert(id), p.gwKey(id), der, key)
}

// write stores a certificate (0644) and its key (0600) atomically in a 0700 directory.
func (p PKI) write(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("pki dir %s: %w", p.Dir, err)
	}
	if err := os.Chmod(p.Dir, 0o700); err != nil {
		return fmt.Errorf("pki dir %s: %w", p.Dir, err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	// A leftover temp file would keep its (maybe wider) mode through WriteFile.
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readCert(path string) (*x509.Certificate, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w (run `sitectl tunnels certs` to create it)", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("certificate %s: no PEM CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", path, err)
	}
	return c, blk.Bytes, nil
}

// readKey reads a PEM private key and refuses one that others can read. Errors never
// contain key material.
func readKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w (run `sitectl tunnels certs` to create it)", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key %s has mode %o; others can read it: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("private key %s: no PEM PRIVATE KEY (PKCS#8) block", path)
	}
	return bytes.Clone(blk.Bytes), nil
}

// CheckOutsideRepo refuses a PKI directory inside a git work tree: private keys must
// never be committed.
func CheckOutsideRepo(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			return fmt.Errorf("tunnel.pki_dir %s is inside the git work tree %s; keep private keys outside the repository (e.g. /etc/sitectl/pki)", dir, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
