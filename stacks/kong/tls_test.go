package kong_test

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/monitoring/targets/stacktest"
)

// TestSpokeVerifiesHub: with a fresh sitectl Kong PKI (EnsureHubCert), the
// certificate the hub's Kong is given (its TLS secret) verifies against the CA in
// a spoke's kong.yml for every hub address the spoke's /admin upstream targets and
// for the upstream's name; the hub's key is a file reference, never in kong.yml.
func TestSpokeVerifiesHub(t *testing.T) {
	for _, env := range []string{"production", "lab"} {
		t.Run(env, func(t *testing.T) {
			topo := stacktest.Load(t, env, "cloud:tunnel.pki_dir="+t.TempDir())
			caSt, st, err := kong.EnsureHubCert(topo)
			if err != nil || caSt.State != "created" || st.State != "created" {
				t.Fatalf("ensure: %+v %+v %v", caSt, st, err)
			}
			hub, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("cloud")})
			if err != nil {
				t.Fatal(err)
			}
			certRef, keyRef := hub.Secrets["kong-tls-cert"], hub.Secrets["kong-tls-key"]
			if certRef.File == "" || keyRef.File == "" {
				t.Fatalf("hub TLS secrets %+v", hub.Secrets)
			}
			b, err := os.ReadFile(certRef.File)
			if err != nil {
				t.Fatal(err)
			}
			hubCert := parseCert(t, b)
			key, err := os.ReadFile(keyRef.File)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range topo.Sites {
				if s.IsHub() {
					continue
				}
				r, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: s})
				if err != nil {
					t.Fatal(err)
				}
				conf := r.Files["kong.yml"]
				if strings.Contains(string(conf), strings.TrimSpace(string(key))[40:80]) {
					t.Fatalf("%s: kong.yml holds the hub's key", s.Name)
				}
				var d struct {
					Services []struct {
						Name           string
						TLSVerify      *bool    `yaml:"tls_verify"`
						CACertificates []string `yaml:"ca_certificates"`
					}
					Upstreams []struct {
						Name    string
						Targets []struct{ Target string }
					}
					CACerts []struct{ ID, Cert string } `yaml:"ca_certificates"`
				}
				if err := yaml.Unmarshal(conf, &d); err != nil {
					t.Fatal(err)
				}
				roots := x509.NewCertPool()
				for _, svc := range d.Services {
					if svc.Name != "admin" {
						continue
					}
					if svc.TLSVerify == nil || !*svc.TLSVerify || len(svc.CACertificates) != 1 {
						t.Fatalf("%s: admin service %+v", s.Name, svc)
					}
					for _, c := range d.CACerts {
						if c.ID == svc.CACertificates[0] {
							roots.AddCert(parseCert(t, []byte(c.Cert)))
						}
					}
				}
				names := []string{"admin.hub"}
				for _, u := range d.Upstreams {
					if u.Name == "admin.hub" {
						for _, tg := range u.Targets {
							host, _, err := net.SplitHostPort(tg.Target)
							if err != nil {
								t.Fatal(err)
							}
							names = append(names, host)
						}
					}
				}
				if len(names) < 2 {
					t.Fatalf("%s: no admin.hub targets", s.Name)
				}
				for _, n := range names {
					if _, err := hubCert.Verify(x509.VerifyOptions{Roots: roots, DNSName: n}); err != nil {
						t.Errorf("%s: the hub's certificate does not verify for %s against kong.yml's CA: %v", s.Name, n, err)
					}
				}
			}
		})
	}
}

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("no PEM in %q", b)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
