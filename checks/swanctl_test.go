package checks_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/stacktest"
	"github.com/sitectl/sitectl/tunnels"
)

// An independent check of what sitectl renders for strongSwan: each gateway's
// swanctl.conf and strongswan.conf, with its certificates, key and PSK files laid out
// as the strongswan service lays them out in /etc/swanctl, loaded by a real
// charon-systemd with `swanctl --load-all`. swanctl exits 0 on "invalid config file"
// and on connections that fail to load, so the verdict is read from its output.
//
// Each load runs in its own private mount and network namespace (unshare): the
// rendered files are bound at /etc/swanctl, a tmpfs covers /run (the rendered vici
// socket is /var/run/charon.vici), and charon binds its IKE ports in an empty network.
// Nothing is shared with the host or the lab, so this runs in the -short pass (about
// 0.15 s a gateway); it needs root for the namespaces and is skipped without it.

// swanctlDirs are the folders the strongswan-swanctl package creates under
// /etc/swanctl (and the strongswan image has): swanctl complains about each missing one.
var swanctlDirs = []string{"conf.d", "x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl",
	"pubkey", "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"}

// loadScript runs inside `unshare --mount --net --fork`: $1 is the directory with
// strongswan.conf and swanctl/ (bound at /etc/swanctl). swanctl's output goes to
// stdout; charon's to $1/charon.out.
const loadScript = `set -eu
d=$1
mount --bind "$d/swanctl" /etc/swanctl
mount -t tmpfs sitectl-swanctl-check /run
export STRONGSWAN_CONF="$d/strongswan.conf"
sock=$2
mkdir -p "$(dirname "$sock")"
charon-systemd >"$d/charon.out" 2>&1 &
pid=$!
i=0
while [ ! -S "$sock" ]; do
	i=$((i+1))
	if [ $i -gt 1000 ] || ! kill -0 $pid 2>/dev/null; then echo "charon: no vici socket $sock" >&2; cat "$d/charon.out" >&2; exit 1; fi
	sleep 0.01
done
rc=0
swanctl --load-all 2>&1 || rc=$?
echo "swanctl exit status $rc"
swanctl --list-conns 2>&1 | sed 's/^/list-conns: /'
kill $pid
wait $pid || true
`

// checkTools skips when not root; as root (CI) a missing tool is a failure.
func checkTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, bin := range []string{"charon-systemd", "swanctl", "unshare", "mount"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("swanctl load check: needs root (a private mount and network namespace per charon); run `make test` as root")
	}
	if len(missing) > 0 {
		t.Fatalf("swanctl load check: %s not installed; run `make deps` (strongswan-swanctl, charon-systemd)", strings.Join(missing, ", "))
	}
}

// gatewayFiles are the files of one gateway as /etc/swanctl holds them in the
// strongswan service: the rendered swanctl.conf, the CA and gateway certificates,
// the gateway key, and the PSK include files.
type gatewayFiles struct {
	site       string
	strongswan string
	swanctl    map[string][]byte // path under /etc/swanctl -> content
	socket     string
	conns      []string // connections swanctl must load
	children   []string // their child SAs, which --list-conns must show
	certs      []string // certificate files it must load (under /etc/swanctl)
	keys       []string // private key files it must load
	secrets    []string // ike secrets it must load
}

func render(t *testing.T, topo *sites.Topology, g *tunnels.Gateway, psk []byte) gatewayFiles {
	t.Helper()
	sc, err := tunnels.RenderStrongswan(g)
	if err != nil {
		t.Fatal(err)
	}
	sock, err := tunnels.SocketPath(g.Vici)
	if err != nil {
		t.Fatal(err)
	}
	f := gatewayFiles{site: g.Site, strongswan: sc, socket: sock,
		swanctl: map[string][]byte{"swanctl.conf": []byte(tunnels.RenderSwanctl(g))}}
	x509 := false
	for _, c := range g.Conns {
		f.conns = append(f.conns, c.Name)
		f.children = append(f.children, c.Child)
		if c.Auth == "psk" {
			inc := strings.TrimPrefix(tunnels.PSKIncludePath(c.Name), "/etc/swanctl/")
			f.swanctl[inc] = []byte(tunnels.RenderPSKSecret(c, psk))
			f.secrets = append(f.secrets, "ike-"+c.Name)
		} else {
			x509 = true
		}
	}
	if x509 {
		s := topo.Site(g.Site)
		ca, gw := tunnels.SiteCerts(topo, s)
		if _, _, err := tunnels.Ensure(ca, gw, g.ID, s.Tunnel.KeyType, s.Tunnel.CertLifetime.D()); err != nil {
			t.Fatal(err)
		}
		for dst, src := range map[string]string{
			tunnels.CAFile:         filepath.Join(ca.Dir, "ca.crt"),
			tunnels.CertFile(g.ID): gw.CertPath(g.ID),
			tunnels.KeyFile(g.ID):  filepath.Join(gw.Dir, g.ID+".key"),
		} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			f.swanctl[dst] = b
		}
		f.certs = []string{tunnels.CAFile, tunnels.CertFile(g.ID)}
		f.keys = []string{tunnels.KeyFile(g.ID)}
	}
	return f
}

// loadAll writes the files and runs charon + swanctl --load-all in private
// namespaces; it returns swanctl's output.
func loadAll(t *testing.T, f gatewayFiles) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range swanctlDirs {
		if err := os.MkdirAll(filepath.Join(dir, "swanctl", d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range f.swanctl {
		if err := os.WriteFile(filepath.Join(dir, "swanctl", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(f.strongswan), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("unshare", "--mount", "--net", "--fork", "sh", "-c", loadScript, "load", dir, f.socket)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: charon/swanctl did not run: %v\n%s", f.site, err, out.String())
	}
	return out.String()
}

// swanctl's plugin loader (the client, not charon) names every optional plugin the
// distribution did not build; that is about the machine, not the configuration.
var missingPlugin = regexp.MustCompile(`^plugin '[a-z0-9-]+': failed to load - \S+ not found and no plugin file available$`)

// The summary line: "successfully loaded N connections, 0 unloaded" when all
// loaded, "loaded N of M connections, F failed to load, 0 unloaded" otherwise.
var (
	allConns  = regexp.MustCompile(`^successfully loaded (\d+) connections, \d+ unloaded$`)
	someConns = regexp.MustCompile(`^loaded \d+ of \d+ connections, \d+ failed to load`)
)

// judge returns what is wrong with swanctl's output for f: a line saying invalid,
// failed or error, a connection (or child), certificate, key or secret not loaded, a
// count that is not all of them, or a non-zero exit status.
func judge(f gatewayFiles, out string) []string {
	var problems []string
	seen := map[string]bool{} // lines of --load-all, lower case
	var listed []string       // lines of --list-conns
	counted := false
	for _, line := range strings.Split(out, "\n") {
		list := strings.HasPrefix(line, "list-conns: ")
		line = strings.TrimSpace(strings.TrimPrefix(line, "list-conns: "))
		if line == "" || missingPlugin.MatchString(line) {
			continue
		}
		if list {
			listed = append(listed, line)
		} else {
			seen[strings.ToLower(line)] = true
		}
		if m := allConns.FindStringSubmatch(line); m != nil {
			counted = true
			if m[1] != fmt.Sprint(len(f.conns)) {
				problems = append(problems, fmt.Sprintf("%q: want %d connections", line, len(f.conns)))
			}
			continue
		}
		if someConns.MatchString(line) {
			counted = true
			problems = append(problems, line)
			continue
		}
		l := strings.ToLower(line)
		if strings.Contains(l, "invalid") || strings.Contains(l, "failed") || strings.Contains(l, "error") {
			problems = append(problems, line)
		}
	}
	if !counted {
		problems = append(problems, "no \"loaded ... connections\" line")
	}
	want := []string{"swanctl exit status 0"}
	for _, c := range f.conns {
		want = append(want, fmt.Sprintf("loaded connection '%s'", c))
	}
	for _, c := range f.certs {
		want = append(want, "loaded certificate from '/etc/swanctl/"+c+"'")
	}
	for _, k := range f.keys {
		want = append(want, "loaded ecdsa key from '/etc/swanctl/"+k+"'")
	}
	for _, s := range f.secrets {
		want = append(want, "loaded ike secret '"+s+"'")
	}
	for _, w := range want {
		if !seen[strings.ToLower(w)] {
			problems = append(problems, "missing: "+w)
		}
	}
	// charon holds what was loaded: every connection and child in --list-conns.
	for i, c := range f.conns {
		for _, prefix := range []string{c + ": IKEv2,", f.children[i] + ": TUNNEL,"} {
			found := false
			for _, l := range listed {
				found = found || strings.HasPrefix(l, prefix)
			}
			if !found {
				problems = append(problems, "swanctl --list-conns shows no "+strings.TrimSuffix(prefix, ","))
			}
		}
	}
	return problems
}

// TestSwanctlLoadAll loads every gateway of every environment (and the direct-link
// and PSK variants) into a real charon.
func TestSwanctlLoadAll(t *testing.T) {
	checkTools(t)
	t.Setenv("SITECTL_TEST_SWANCTL_PSK", "not-a-real-psk-only-for-the-swanctl-check")
	type variant struct {
		name, env string
		set       []string
	}
	var variants []variant
	for _, env := range stacktest.Envs {
		variants = append(variants, variant{env, env, nil})
	}
	variants = append(variants,
		variant{"dev-direct", "dev", []string{"douala:tunnel.peers=cloud,yaounde"}},
		variant{"dev-psk", "dev", []string{"douala:tunnel.peers=cloud,yaounde", "tunnel.auth=psk", "tunnel.psk.env=SITECTL_TEST_SWANCTL_PSK"}})
	var total time.Duration
	loads := 0
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			topo := stacktest.Load(t, v.env, append([]string{"tunnel.pki_dir=" + t.TempDir()}, v.set...)...)
			gws, err := tunnels.Build(topo)
			if err != nil {
				t.Fatal(err)
			}
			if len(gws) != len(topo.Sites) {
				t.Fatalf("%d gateways for %d sites", len(gws), len(topo.Sites))
			}
			for _, g := range gws {
				f := render(t, topo, g, []byte("not-a-real-psk"))
				start := time.Now()
				out := loadAll(t, f)
				total += time.Since(start)
				loads++
				if p := judge(f, out); len(p) > 0 {
					t.Errorf("%s/%s: swanctl --load-all did not load the rendered configuration:\n  %s\nswanctl output:\n%s",
						v.name, g.Site, strings.Join(p, "\n  "), out)
				}
			}
		})
	}
	if loads > 0 {
		t.Logf("%d gateways loaded in %v (%v each)", loads, total.Round(time.Millisecond), (total / time.Duration(loads)).Round(time.Millisecond))
	}
}

// TestSwanctlLoadAllRefusesBroken shows the check can fail: a bad key, a syntax
// error, a missing certificate and a missing PSK file are each reported.
func TestSwanctlLoadAllRefusesBroken(t *testing.T) {
	checkTools(t)
	t.Setenv("SITECTL_TEST_SWANCTL_PSK", "not-a-real-psk-only-for-the-swanctl-check")
	good := func(t *testing.T, set ...string) gatewayFiles {
		topo := stacktest.Load(t, "dev", append([]string{"tunnel.pki_dir=" + t.TempDir(), "douala:tunnel.peers=cloud,yaounde"}, set...)...)
		g, err := tunnels.BuildSite(topo, "douala")
		if err != nil {
			t.Fatal(err)
		}
		return render(t, topo, g, []byte("not-a-real-psk"))
	}
	edit := func(f gatewayFiles, old, repl string) gatewayFiles {
		conf := string(f.swanctl["swanctl.conf"])
		if !strings.Contains(conf, old) {
			t.Fatalf("swanctl.conf has no %q to break", old)
		}
		f.swanctl["swanctl.conf"] = []byte(strings.Replace(conf, old, repl, 1))
		return f
	}
	cases := map[string]func(t *testing.T) gatewayFiles{
		"unknown key": func(t *testing.T) gatewayFiles {
			return edit(good(t), "    mobike = no\n", "    mobike = no\n    dpd_timeout_typo = 30s\n")
		},
		"bad value": func(t *testing.T) gatewayFiles {
			return edit(good(t), "start_action = trap", "start_action = sometimes")
		},
		"syntax error": func(t *testing.T) gatewayFiles {
			return edit(good(t), "children {", "children {{")
		},
		"certificate missing": func(t *testing.T) gatewayFiles {
			f := good(t)
			for _, c := range f.certs {
				if strings.HasPrefix(c, "x509/") {
					delete(f.swanctl, c)
				}
			}
			return f
		},
		"psk file missing": func(t *testing.T) gatewayFiles {
			f := good(t, "tunnel.auth=psk", "tunnel.psk.env=SITECTL_TEST_SWANCTL_PSK")
			for name := range f.swanctl {
				if strings.HasPrefix(name, "conf.d/") {
					delete(f.swanctl, name)
				}
			}
			return f
		},
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			f := cases[n](t)
			out := loadAll(t, f)
			p := judge(f, out)
			if len(p) == 0 {
				t.Fatalf("a broken swanctl.conf (%s) passed the check:\n%s", n, out)
			}
			t.Logf("refused: %s", strings.Join(p, "; "))
		})
	}
}
