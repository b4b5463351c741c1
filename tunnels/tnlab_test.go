package tunnels

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab/labgate"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// tnLab is this package's own small lab: a WAN bridge namespace, one gateway
// namespace per site running charon-systemd (kernel-libipsec), and one host namespace
// on each site's LAN. Namespace names start with "tn-" so they cannot collide with
// the shared lab. Everything is removed at the end of the test.
type tnLab struct {
	t     testing.TB
	dir   string
	topo  *sites.Topology
	procs []*exec.Cmd
	nss   []string
	set   []string
}

// reload loads the lab's topology with more --set overrides (e.g. a direct link).
func (l *tnLab) reload(t testing.TB, extra ...string) *sites.Topology {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}, Set: append(append([]string{}, l.set...), extra...)})
	if err != nil {
		t.Fatal(err)
	}
	// The lab's reach (lab/labreach), which this package's tests cannot import
	// (lab imports tunnels): dial and run commands in the gateway's namespace.
	for _, s := range topo.Sites {
		if ns := s.Lab.Namespace; ns != "" {
			s.Reach = sites.Reach{Dial: netns.Dialer(ns), GatewayName: ns,
				Gateway: func(ctx context.Context, argv ...string) ([]byte, error) { return netns.Run(ctx, ns, argv...) }}
		}
	}
	return topo
}

var tnSites = []string{"cloud", "douala", "yaounde"}

func wanAddr(i int) string { return fmt.Sprintf("192.0.2.%d", 10+i) }

func labSkip(t testing.TB) {
	t.Helper()
	labgate.Skip(t)
	for _, bin := range []string{"charon-systemd", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("lab test: %s not installed (make deps)", bin)
		}
	}
}

func sh(t testing.TB, argv ...string) {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

func inNS(ns string, argv ...string) []string {
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

// startTNLab builds the namespaces, writes certificates and strongswan.conf, and
// starts charon in each gateway. extra are --set overrides (e.g. a direct link).
func startTNLab(t testing.TB, extra ...string) *tnLab {
	t.Helper()
	labSkip(t)
	l := &tnLab{t: t, dir: t.TempDir()}
	if os.Getenv("TN_KEEP") != "" { // debugging: keep the lab, clean up by hand
		l.dir, _ = os.MkdirTemp("", "tnlab-")
	}
	t.Cleanup(l.cleanup)
	// A previous run killed hard may have left our namespaces behind.
	for _, ns := range l.allNS() {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	set := []string{"tunnel.ipsec=libipsec", "tunnel.pki_dir=" + filepath.Join(l.dir, "pki")}
	for i, s := range tnSites {
		set = append(set, s+":lab.namespace=tn-gw-"+s, s+":gateway.wan_address="+wanAddr(i),
			s+":gateway.vici=unix://"+filepath.Join(l.dir, s, "charon.vici"))
	}
	l.set = set
	topo := l.reload(t, extra...)
	l.topo = topo
	l.addNS("tn-wan")
	sh(t, "ip", "-n", "tn-wan", "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", "tn-wan", "link", "set", "br0", "up")
	for i, name := range tnSites {
		s := topo.Site(name)
		gw, host := "tn-gw-"+name, "tn-h-"+name
		l.addNS(gw)
		l.addNS(host)
		port := fmt.Sprintf("p-%s", name)
		sh(t, "ip", "link", "add", "wan", "netns", gw, "type", "veth", "peer", "name", port, "netns", "tn-wan")
		sh(t, "ip", "-n", "tn-wan", "link", "set", port, "master", "br0", "up")
		sh(t, "ip", "-n", gw, "addr", "add", wanAddr(i)+"/24", "dev", "wan")
		sh(t, "ip", "-n", gw, "link", "set", "wan", "up")
		sh(t, "ip", "link", "add", "lan", "netns", gw, "type", "veth", "peer", "name", "eth0", "netns", host)
		bits := strings.SplitN(s.LAN, "/", 2)[1]
		sh(t, "ip", "-n", gw, "addr", "add", s.Gateway.LANAddress+"/"+bits, "dev", "lan")
		sh(t, "ip", "-n", gw, "link", "set", "lan", "up")
		sh(t, "ip", "-n", host, "addr", "add", l.hostAddr(name)+"/"+bits, "dev", "eth0")
		sh(t, "ip", "-n", host, "link", "set", "eth0", "up")
		sh(t, "ip", "-n", host, "route", "add", "default", "via", s.Gateway.LANAddress)
		sh(t, inNS(gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")...)
	}
	gws, err := Build(topo)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		s := topo.Site(g.Site)
		ca, gwp := SiteCerts(topo, s)
		if _, _, err := Ensure(ca, gwp, g.ID, s.Tunnel.KeyType, s.Tunnel.CertLifetime.D()); err != nil {
			t.Fatal(err)
		}
		l.startCharon(g)
	}
	return l
}

func (l *tnLab) allNS() []string {
	out := []string{"tn-wan"}
	for _, s := range tnSites {
		out = append(out, "tn-gw-"+s, "tn-h-"+s)
	}
	return out
}

func (l *tnLab) addNS(name string) {
	sh(l.t, "ip", "netns", "add", name)
	l.nss = append(l.nss, name)
	sh(l.t, "ip", "-n", name, "link", "set", "lo", "up")
}

// hostAddr is the address of the site's LAN host namespace (the site's first node).
func (l *tnLab) hostAddr(site string) string {
	s := l.topo.Site(site)
	return s.Nodes[0].Address
}

func (l *tnLab) startCharon(g *Gateway) {
	dir := filepath.Join(l.dir, g.Site)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.t.Fatal(err)
	}
	conf, err := RenderStrongswan(g)
	if err != nil {
		l.t.Fatal(err)
	}
	// Test only: charon-systemd logs to the journal, which the lab has not; log to a
	// file instead (strongswan.conf merges repeated sections).
	conf += "charon-systemd {\n  filelog {\n    tn {\n      path = " + filepath.Join(dir, "charon.log") + "\n      default = 1\n      flush_line = yes\n    }\n  }\n}\n"
	path := filepath.Join(dir, "strongswan.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "charon.out"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", "tn-gw-"+g.Site, "charon-systemd")
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+path)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.procs = append(l.procs, cmd)
	sock, _ := SocketPath(g.Vici)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return
		}
	}
	b, _ := os.ReadFile(log.Name())
	l.t.Fatalf("charon for %s: no vici socket after 10s: %s", g.Site, b)
}

func (l *tnLab) cleanup() {
	if os.Getenv("TN_KEEP") != "" {
		l.t.Logf("TN_KEEP: lab kept in %s", l.dir)
		return
	}
	if l.t.Failed() {
		for _, s := range tnSites {
			if b, err := os.ReadFile(filepath.Join(l.dir, s, "charon.log")); err == nil {
				l.t.Logf("charon %s log (tail):\n%s", s, tail(string(b), 60))
				_ = os.WriteFile(filepath.Join(os.TempDir(), "tn-failed-charon-"+s+".log"), b, 0o644)
			}
		}
	}
	for _, p := range l.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	for i := len(l.nss) - 1; i >= 0; i-- {
		_ = exec.Command("ip", "netns", "del", l.nss[i]).Run()
	}
}

// installAll installs every gateway over vici: the tunnels part applied, as
// `sitectl tunnels install` does (tunnels/tunneltest, which this package's own
// tests cannot import).
func (l *tnLab) installAll(ctx context.Context) {
	l.t.Helper()
	for _, s := range l.topo.Sites {
		steps, err := Part{}.Plan(ctx, l.topo, s)
		if err != nil {
			l.t.Fatalf("install %s: %v", s.Name, err)
		}
		if _, err := plan.Apply(ctx, steps, nil); err != nil {
			l.t.Fatalf("install %s: %v", s.Name, err)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
