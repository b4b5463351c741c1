package lab

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/lab/images"
	"github.com/sitectl/sitectl/sites"
)

// EncryptionException is why overlay encryption is off in the lab.
const EncryptionException = "lab kernel has no ESP (CONFIG_INET_ESP)"

// OverlayPath is where lab up writes the lab environment overlay.
func OverlayPath(configDir string) string {
	return filepath.Join(configDir, sites.EnvDir, EnvName+".yaml")
}

// labMonitoring are the lab's values.monitoring: scrapes and rule evaluations
// every 2 s and TunnelDown after 10 s down, so a drill's cut of ~30 s sees the alert
// fire and resolve; replication alerts after 20 s. Production keeps the defaults
// (15 s, 1 m, 5 m: docs/drills.md says why).
var labMonitoring = map[string]any{
	"scrape_interval":     "2s",
	"evaluation_interval": "2s",
	"alerts": map[string]any{
		"tunnel_down_for": "10s",
		// A drill's few writes at a publisher whose subscriber is cut off raise
		// ReplicationLagHigh; after 20 s, once TunnelDown (10 s) fires and
		// inhibits it, as production's 5m after 1m does.
		"replication_for":       "20s",
		"replication_lag_bytes": 1024,
		"target_down_for":       "30s",
		"replicas_for":          "30s",
		"kong_for":              "1m",
	},
}

// secretsDir holds the lab's generated secret values (0600 files).
func (l *Layout) secretsDir() string { return filepath.Join(l.StateDir, "secrets") }

// pkiDir is the lab's tunnel PKI dir (CA, certificates, keys), shared by its sites.
func (l *Layout) pkiDir() string { return filepath.Join(l.StateDir, "pki") }

// secretNames are the secrets the lab generates: every secret a site names, plus the
// postgres password and mongo keyfile references.
func secretNames(topo *sites.Topology, l *Layout) []string {
	set := map[string]bool{"postgres-password": true, "postgres-app-password": true, "mongo-keyfile": true, "mongo-password": true, ReceiverTokenSecret: true}
	for _, sl := range l.Sites {
		for k := range topo.Site(sl.Name).Secrets {
			set[k] = true
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// APIHealthcheck is the lab's health check of the Django API written as an app's
// values.django-api.healthcheck (the built-in's healthcheck: curl, health_path:
// /health, with its 3 s retry).
var APIHealthcheck = []any{"CMD", "curl", "-fsS", "-o", "/dev/null", "--retry", "3", "--retry-delay", "1",
	"--retry-connrefused", "--retry-max-time", "3", "http://127.0.0.1:8000/health"}

// apiValues are the lab's values.django-api: the built-in stack's keys where a site
// runs it, else the app's (design decision 30: once the built-in is gone the API
// is the app django-api, which takes its health check as values.django-api.healthcheck).
func apiValues(topo *sites.Topology) map[string]any {
	for _, s := range topo.Sites {
		if s.HasStack("django-api") {
			return map[string]any{"healthcheck": "curl", "health_path": "/health"}
		}
	}
	return map[string]any{"healthcheck": map[string]any{"test": APIHealthcheck}}
}

// Overlay renders the lab environment overlay for the layout: {all: ..., sites: ...}.
// It points every site at the lab's engines, vici sockets and namespaces, maps images
// to the lab's, and sets what this kernel needs (dnsrr, host-mode ports, no overlay
// encryption, userspace IPsec). Secrets are file references, never values.
func Overlay(topo *sites.Topology, l *Layout) ([]byte, error) {
	secrets := map[string]any{}
	for _, name := range secretNames(topo, l) {
		secrets[name] = map[string]any{"file": filepath.Join(l.secretsDir(), name)}
	}
	imgs := map[string]any{}
	for _, im := range images.Catalog() {
		imgs[im.Logical] = im.Ref
	}
	all := map[string]any{
		"deploy": map[string]any{
			"endpoint_mode":        "dnsrr",
			"publish_mode":         "host",
			"encryption_exception": EncryptionException,
		},
		"tunnel": map[string]any{
			"ipsec":   "libipsec",
			"pki_dir": l.pkiDir(),
		},
		"images": imgs,
		// The lab image has a static curl: health checks need no Python start.
		"values": map[string]any{
			"django-api": apiValues(topo),
			// Alerts fast enough for a drill to see them (docs/drills.md, "Alerts"):
			// a cut reaches the receiver within ~20 s, a heal resolves within ~10 s.
			"monitoring": labMonitoring,
			// The stand-in Elasticsearch has no users: security off, which `sitectl
			// audit` lists as a lab exception.
			"elk": map[string]any{"security": false},
		},
		"secrets": secrets,
		"postgres": map[string]any{
			"password":     map[string]any{"file": filepath.Join(l.secretsDir(), "postgres-password")},
			"app_password": map[string]any{"file": filepath.Join(l.secretsDir(), "postgres-app-password")},
		},
		"mongo": map[string]any{
			"keyfile":  map[string]any{"file": filepath.Join(l.secretsDir(), "mongo-keyfile")},
			"password": map[string]any{"file": filepath.Join(l.secretsDir(), "mongo-password")},
		},
	}
	perSite := map[string]any{}
	for _, sl := range l.Sites {
		site := topo.Site(sl.Name)
		nodes, manager := overlayNodes(sl)
		networks := map[string]any{}
		for name := range site.Networks {
			networks[name] = map[string]any{"encrypted": false}
		}
		siteMap := map[string]any{
			"engine": map[string]any{
				"host": manager, "context": "", "tls_verify": false,
				"ca_cert": "", "cert": "", "key": "",
			},
			"nodes":    nodes,
			"networks": networks,
			"gateway": map[string]any{
				"vici":        "unix://" + sl.Vici,
				"wan_address": prefixAddr(sl.WANAddress),
				"lan_address": prefixAddr(sl.LANAddress),
			},
			"lab": map[string]any{
				"namespace": sl.GatewayNS,
				"state_dir": l.StateDir,
			},
		}
		if url := l.ReceiverURL(topo.Hub); url != "" && sl.Name == topo.Hub {
			siteMap["alerting"] = l.receiverAlerting(topo.Hub)
			siteMap["lab"].(map[string]any)["alert_receiver"] = url
		}
		perSite[sl.Name] = siteMap
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by `sitectl lab up` (prefix %s, state %s); `sitectl lab down` removes it.\n", l.Prefix, l.StateDir)
	b.WriteString("# The lab environment: every site on this machine, in network namespaces.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"all": all, "sites": perSite}); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// overlayNodes are a lab site's nodes as the overlay writes them, and the engine of
// its first manager.
func overlayNodes(sl SiteLayout) (nodes []any, manager string) {
	for _, n := range sl.Nodes {
		node := map[string]any{
			"name":    n.Name,
			"role":    n.Role,
			"address": prefixAddr(n.Address),
			"engine":  n.Engine(),
		}
		if len(n.Labels) > 0 {
			labels := map[string]any{}
			for k, v := range n.Labels {
				labels[k] = v
			}
			node["labels"] = labels
		}
		nodes = append(nodes, node)
		if manager == "" && n.Role == "manager" {
			manager = n.Engine()
		}
	}
	return nodes, manager
}

// writeSecrets generates every missing secret value (0600): random text, or for a
// "<name>-tls-cert" / "<name>-tls-key" pair a self-signed certificate and its key.
func writeSecrets(topo *sites.Topology, l *Layout) error {
	if err := os.MkdirAll(l.secretsDir(), 0o700); err != nil {
		return err
	}
	names := secretNames(topo, l)
	for _, name := range names {
		p := filepath.Join(l.secretsDir(), name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if base, ok := strings.CutSuffix(name, "-tls-cert"); ok {
			if err := writeTLSPair(l.secretsDir(), base); err != nil {
				return fmt.Errorf("write secret %s: %w", name, err)
			}
			continue
		}
		if _, ok := strings.CutSuffix(name, "-tls-key"); ok {
			continue // written with its certificate
		}
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(hex.EncodeToString(buf)+"\n"), 0o600); err != nil {
			return fmt.Errorf("write secret %s: %w", name, err)
		}
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join(l.secretsDir(), name)); err != nil {
			return fmt.Errorf("secret %s was not generated (a -tls-key needs its -tls-cert)", name)
		}
	}
	return nil
}

// writeTLSPair writes <base>-tls-cert and <base>-tls-key: a self-signed ECDSA P-256
// certificate for the lab (localhost and the service name).
func writeTLSPair(dir, base string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: base + " (sitectl lab)"},
		DNSNames:     []string{"localhost", base},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, base+"-tls-key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, base+"-tls-cert"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

// writeOverlay writes the secrets, env/lab.yaml and .sitectl-env, then checks that
// the lab environment validates.
func (u *upper) writeOverlay() error {
	l := u.layout
	if err := writeSecrets(u.topo, l); err != nil {
		return err
	}
	if err := os.MkdirAll(l.pkiDir(), 0o700); err != nil {
		return err
	}
	b, err := Overlay(u.topo, l)
	if err != nil {
		return err
	}
	path := OverlayPath(u.opts.ConfigDir)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, b) {
		u.changed = true
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	found := false
	for _, f := range u.state.Files {
		found = found || f == path
	}
	if !found {
		u.state.Files = append(u.state.Files, path)
		if err := u.save(); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(u.opts.ConfigDir, sites.CurrentEnvFile), []byte(EnvName+"\n"), 0o644); err != nil {
		return err
	}
	if _, err := sites.Load(sites.Options{Dir: u.opts.ConfigDir, Env: EnvName, Environ: []string{}}); err != nil {
		return fmt.Errorf("the lab environment %s does not validate: %w", path, err)
	}
	return nil
}
