package kong_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/kong"
	"github.com/sitectl/sitectl/stacks/stacktest"
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

// TestCertPart: before sitectl's Kong PKI exists a spoke's kong.yml still verifies
// (against no named CA: it fails closed) and the hub keeps its own TLS secrets;
// deploy's kong certificate part plans the CA and the hub's certificate, applying
// it creates both, and then the part plans nothing and kong.yml names the CA.
func TestCertPart(t *testing.T) {
	topo := stacktest.Load(t, "production", "cloud:tunnel.pki_dir="+t.TempDir())
	spoke, hub := topo.Site("douala"), topo.Site("cloud")
	r, err := kong.Stack{}.Render(stacks.Input{Topo: topo, Site: spoke})
	if err != nil {
		t.Fatal(err)
	}
	if conf := string(r.Files["kong.yml"]); !strings.Contains(conf, "tls_verify: true") || strings.Contains(conf, "ca_certificates") {
		t.Errorf("before the PKI exists:\n%s", conf)
	}
	if h, err := (kong.Stack{}).Render(stacks.Input{Topo: topo, Site: hub}); err != nil || h.Secrets != nil {
		t.Errorf("hub before the PKI exists: %v %v", h.Secrets, err)
	}
	steps, err := kong.CertPart{}.Plan(context.Background(), topo, spoke)
	if err != nil || len(steps) != 2 || steps[0].Name == steps[1].Name {
		t.Fatalf("plan: %+v %v", steps, err)
	}
	if !strings.Contains(strings.Join(steps[1].Diff, " "), "admin.hub") {
		t.Errorf("the certificate step does not name the SANs: %v", steps[1].Diff)
	}
	if err := steps[0].Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if steps, err = (kong.CertPart{}).Plan(context.Background(), topo, hub); err != nil || len(steps) != 0 {
		t.Errorf("plan after apply: %+v %v", steps, err)
	}
	r, err = kong.Stack{}.Render(stacks.Input{Topo: topo, Site: spoke})
	if err != nil || !strings.Contains(string(r.Files["kong.yml"]), "ca_certificates") {
		t.Errorf("after apply: %v\n%s", err, r.Files["kong.yml"])
	}
	off := stacktest.Load(t, "production", "cloud:values.kong.admin.tls_verify=false")
	if steps, err := (kong.CertPart{}).Plan(context.Background(), off, off.Site("cloud")); err != nil || len(steps) != 0 {
		t.Errorf("opted out: %+v %v", steps, err)
	}
}
