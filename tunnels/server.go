package tunnels

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// ServerCert is a TLS server certificate a PKI issues besides the gateways' (the hub
// Kong's, for the spokes' /admin upstream): the file id and the names clients verify.
// ID is a DNS SAN too, so the certificate checks like a gateway's.
type ServerCert struct {
	ID  string
	DNS []string
	IPs []net.IP
}

func (c ServerCert) dns() []string {
	out := []string{c.ID}
	for _, d := range c.DNS {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// missingSANs lists the names c wants that cert does not carry.
func (c ServerCert) missingSANs(dns []string, ips []net.IP) []string {
	var out []string
	for _, d := range c.dns() {
		if !slices.Contains(dns, d) {
			out = append(out, d)
		}
	}
	for _, ip := range c.IPs {
		if !slices.ContainsFunc(ips, ip.Equal) {
			out = append(out, ip.String())
		}
	}
	return out
}

// CheckServer reports the state of the CA and the server certificate c, like Check;
// a certificate that lacks one of c's names is "invalid" (it is reissued).
func CheckServer(ca, p PKI, c ServerCert) (caState, st CertState) {
	caState, st = Check(ca, p, c.ID)
	if st.State != CertOK && st.State != CertExpiring {
		return caState, st
	}
	cert, _, err := readCert(p.gwCert(c.ID))
	if err != nil {
		st.State, st.Problem = CertInvalid, err.Error()
		return caState, st
	}
	if miss := c.missingSANs(cert.DNSNames, cert.IPAddresses); len(miss) > 0 {
		st.State, st.Problem = CertInvalid, "does not name "+strings.Join(miss, ", ")
	}
	return caState, st
}

// EnsureServer creates the CA when missing and the server certificate c when
// missing, invalid (names changed), expired or expiring within 30 days.
func EnsureServer(ca, p PKI, c ServerCert, keyType string, lifetime time.Duration) (caState, st CertState, err error) {
	caState, st = CheckServer(ca, p, c)
	switch caState.State {
	case CertMissing:
		if err := ca.createCA(keyType); err != nil {
			return caState, st, err
		}
		caState, st = CheckServer(ca, p, c)
		caState.State = CertCreated
	case CertOK:
	default:
		return caState, st, fmt.Errorf("CA %s: %s %s; replace it by hand (every certificate it signed must then be reissued)", caState.Path, caState.State, caState.Problem)
	}
	if st.State == CertOK {
		return caState, st, nil
	}
	was := st.State
	if err := p.issue(ca, c.ID, keyType, lifetime, c.dns(), c.IPs); err != nil {
		return caState, st, err
	}
	_, st = CheckServer(ca, p, c)
	if st.State != CertOK {
		return caState, st, fmt.Errorf("certificate %s: issued but %s: %s", c.ID, st.State, st.Problem)
	}
	st.State = CertCreated
	if was != CertMissing {
		st.State = CertRenewed
	}
	return caState, st, nil
}

// CAPath is the CA certificate file of a PKI directory.
func (p PKI) CAPath() string { return p.caCert() }

// KeyPath is the private key file of certificate id. Never print its content.
func (p PKI) KeyPath(id string) string { return p.gwKey(id) }
