package kong

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
	"github.com/sitectl/sitectl/tunnels"
)

// AdminPKI is where sitectl keeps the CA that signs the hub Kong's certificate, and
// that certificate with its key: <the hub's tunnel.pki_dir>/kong (outside the
// repository, like the tunnel CA; a CA of its own, so a Kong key cannot pass for a
// gateway). Deploy's CertPart creates and renews them (EnsureHubCert).
func AdminPKI(topo *sites.Topology) (tunnels.PKI, error) {
	hub := topo.HubSite()
	if hub == nil {
		return tunnels.PKI{}, errors.New("kong: the topology has no hub site")
	}
	return tunnels.PKI{Dir: filepath.Join(hub.Tunnel.PKIDir, "kong"), CAName: "sitectl kong CA"}, nil
}

// HubCert is the certificate the hub's Kong presents to the spokes' /admin
// upstream: the names a spoke's Kong connects to (the hub's Kong node addresses, the
// upstream name admin.hub).
func HubCert(topo *sites.Topology) (tunnels.ServerCert, error) {
	hub := topo.HubSite()
	if hub == nil {
		return tunnels.ServerCert{}, errors.New("kong: the topology has no hub site")
	}
	hs, err := ReadSettings(topo, hub)
	if err != nil {
		return tunnels.ServerCert{}, err
	}
	nodes, err := targets.Matching(hub, hs.Constraints)
	if err != nil {
		return tunnels.ServerCert{}, fmt.Errorf("kong at %s: %w (values.kong.constraints)", hub.Name, err)
	}
	c := tunnels.ServerCert{ID: "kong-" + hub.Name, DNS: []string{adminUpstream}}
	for _, n := range nodes {
		if ip := net.ParseIP(n.Address); ip != nil {
			c.IPs = append(c.IPs, ip)
		} else {
			c.DNS = append(c.DNS, n.Address)
		}
	}
	return c, nil
}

// SitectlTLS reports whether the hub's Kong serves sitectl's certificate to the
// spokes: verification on (values.kong.admin.tls_verify) and no operator CA named
// (values.kong.admin.ca), read at the hub.
func SitectlTLS(topo *sites.Topology) (bool, error) {
	hub := topo.HubSite()
	if hub == nil || !hub.HasStack(Name) {
		return false, nil
	}
	hs, err := ReadSettings(topo, hub)
	if err != nil {
		return false, err
	}
	return hs.AdminTLSVerify && hs.AdminCA == "", nil
}

// EnsureHubCert creates sitectl's Kong CA and the hub Kong's certificate when
// missing, and reissues the certificate when expiring or when the hub's Kong nodes
// changed. keyType and lifetime are the hub's tunnel.key_type and cert_lifetime.
func EnsureHubCert(topo *sites.Topology) (caState, st tunnels.CertState, err error) {
	p, err := AdminPKI(topo)
	if err != nil {
		return caState, st, err
	}
	if err := tunnels.CheckOutsideRepo(p.Dir); err != nil {
		return caState, st, err
	}
	c, err := HubCert(topo)
	if err != nil {
		return caState, st, err
	}
	hub := topo.HubSite()
	return tunnels.EnsureServer(p, p, c, hub.Tunnel.KeyType, hub.Tunnel.CertLifetime.D())
}

// hubSecrets are the hub's TLS secrets when it serves sitectl's certificate: the
// certificate and key files of AdminPKI (references; the key is read at deploy
// only); nil while the certificate does not exist yet.
func hubSecrets(topo *sites.Topology, s Settings) (map[string]sites.SecretRef, error) {
	p, err := AdminPKI(topo)
	if err != nil {
		return nil, err
	}
	c, err := HubCert(topo)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(p.CertPath(c.ID)); errors.Is(err, fs.ErrNotExist) {
		// Not created yet (deploy's CertPart creates it before the stacks): the
		// hub serves the site's own TLS secrets, which the spokes then refuse.
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("kong at %s: sitectl's Kong certificate: %w", topo.HubSite().Name, err)
	}
	return map[string]sites.SecretRef{s.TLSCert: {File: p.CertPath(c.ID)}, s.TLSKey: {File: p.KeyPath(c.ID)}}, nil
}

// sitectlCA reads sitectl's Kong CA certificate (PEM) for a spoke's kong.yml; ""
// when it does not exist yet.
func sitectlCA(topo *sites.Topology, site *sites.Site) (string, error) {
	p, err := AdminPKI(topo)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p.CAPath())
	if errors.Is(err, fs.ErrNotExist) {
		// Not created yet: deploy's CertPart creates it before the stacks. Until
		// then kong.yml verifies against Kong's default bundle, which fails closed.
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("kong at %s: sitectl's Kong CA: %w", site.Name, err)
	}
	return caPEM(b, site, "sitectl's Kong CA "+p.CAPath())
}

// caPEM checks that b holds a PEM CA certificate and returns it normalised.
func caPEM(b []byte, site *sites.Site, what string) (string, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("kong at %s: %s is not a PEM certificate; want the CA that signed the hub's Kong certificate", site.Name, what)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("kong at %s: %s: %w", site.Name, what, err)
	}
	if !c.IsCA {
		return "", fmt.Errorf("kong at %s: %s is not a CA certificate (basicConstraints CA:TRUE); want the CA that signed the hub's Kong certificate", site.Name, what)
	}
	return strings.TrimSpace(string(pem.EncodeToMemory(blk))) + "\n", nil
}
