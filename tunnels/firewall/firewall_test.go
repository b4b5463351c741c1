package firewall

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/sites"
)

// environments are the ones the repository ships, plus the lab overlay `lab up`
// writes (its golden copy).
var environments = []string{"dev", "staging", "production", "lab"}

// loadEnv loads the repository's sites in one environment; the lab overlay comes
// from lab/testdata (what `sitectl lab up` writes), with the lab's reach installed
// as sitectl installs it (labreach.Install).
func loadEnv(t testing.TB, env string, set ...string) *sites.Topology {
	t.Helper()
	dir := "../../sites"
	if env == "lab" {
		dir = t.TempDir()
		if err := os.CopyFS(dir, os.DirFS("../../sites")); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("../../lab/testdata/lab.yaml.golden")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "env", "lab.yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := sites.Load(sites.Options{Dir: dir, Env: env, Environ: []string{}, Set: set})
	if err != nil {
		t.Fatalf("load sites (%s): %v", env, err)
	}
	return labreach.Install(topo)
}

func build(t testing.TB, topo *sites.Topology, site string) *Ruleset {
	t.Helper()
	rs, err := Build(topo, topo.Site(site))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRenderGolden(t *testing.T) {
	for _, env := range environments {
		topo := loadEnv(t, env)
		for _, s := range topo.Sites {
			t.Run(env+"/"+s.Name, func(t *testing.T) {
				golden.AssertString(t, filepath.Join(env, s.Name+".nft"), build(t, topo, s.Name).Render())
			})
		}
	}
}

// nftCheck runs `nft -c -f` on a file inside a new, empty network namespace (nft
// needs CAP_NET_ADMIN even to check, and must not see or touch this machine's
// ruleset).
func nftCheck(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft (make deps installs nftables)")
	}
	if os.Geteuid() != 0 {
		t.Skip("nft -c needs root (CAP_NET_ADMIN) in a new network namespace")
	}
	return exec.Command("unshare", "-n", "nft", "-c", "-f", path).CombinedOutput()
}

// TestGoldenRulesetsLoad: nftables itself accepts every golden ruleset.
func TestGoldenRulesetsLoad(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*.nft")
	if len(files) < 12 {
		t.Fatalf("%d golden rulesets, want 3 sites × %d environments", len(files), len(environments))
	}
	for _, f := range files {
		if out, err := nftCheck(t, f); err != nil {
			t.Errorf("nft -c -f %s: %v\n%s", f, err, out)
		}
	}
}

// TestBrokenRulesetRejected: the check above can fail.
func TestBrokenRulesetRejected(t *testing.T) {
	rs := build(t, loadEnv(t, "dev"), "douala")
	text := strings.Replace(rs.Render(), "meta ipsec exists", "meta ipsec exits", 1)
	for name, broken := range map[string]string{
		"misspelt expression": text,
		"undefined counter":   strings.Replace(rs.Render(), `counter name "leak"`, `counter name "nosuch"`, 1),
	} {
		f := filepath.Join(t.TempDir(), "broken.nft")
		if err := os.WriteFile(f, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := nftCheck(t, f); err == nil {
			t.Errorf("%s: nft -c accepted a broken ruleset:\n%s", name, out)
		}
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestPolicy asks the typed ruleset what a hostile WAN neighbour, a peer gateway,
// the admin network and the other sites may do.
func TestPolicy(t *testing.T) {
	for _, env := range []string{"dev", "lab"} {
		topo := loadEnv(t, env)
		douala := build(t, topo, "douala")
		cloud := build(t, topo, "cloud")
		tun := func(p Packet, in bool) Packet {
			if env == "lab" {
				if in {
					p.Iif = LibipsecInterface
				} else {
					p.Oif = LibipsecInterface
				}
			} else {
				p.IPsecIn, p.IPsecOut = in, !in
			}
			return p
		}
		hostile := addr("198.51.100.1")
		cases := []struct {
			name string
			rs   *Ruleset
			p    Packet
			want bool
		}{
			{"WAN to douala postgres", douala, Packet{Hook: "forward", Ct: "new", Src: hostile, Dst: addr("10.10.0.12"), Proto: "tcp", Dport: 5432}, false},
			{"WAN to douala swarm", douala, Packet{Hook: "forward", Ct: "new", Src: hostile, Dst: addr("10.10.0.11"), Proto: "tcp", Dport: 2377}, false},
			{"WAN to douala kong on the edge node", douala, Packet{Hook: "forward", Ct: "new", Src: hostile, Dst: addr("10.10.0.11"), Proto: "tcp", Dport: 80}, true},
			{"WAN to kong port on the db node", douala, Packet{Hook: "forward", Ct: "new", Src: hostile, Dst: addr("10.10.0.12"), Proto: "tcp", Dport: 80}, false},
			{"WAN IKE to douala gateway", douala, Packet{Hook: "input", Ct: "new", Src: hostile, Dst: addr("198.51.100.10"), Proto: "udp", Dport: 500}, false},
			{"WAN SSH to douala gateway", douala, Packet{Hook: "input", Ct: "new", Src: hostile, Dst: addr("198.51.100.10"), Proto: "tcp", Dport: 22}, false},
			{"cloud IKE to douala", douala, Packet{Hook: "input", Ct: "new", Src: addr("203.0.113.30"), Dst: addr("198.51.100.10"), Proto: "udp", Dport: 4500}, true},
			{"cloud ESP to douala", douala, Packet{Hook: "input", Ct: "new", Src: addr("203.0.113.30"), Dst: addr("198.51.100.10"), Proto: "esp"}, true},
			{"admin SSH to douala", douala, Packet{Hook: "input", Ct: "new", Src: addr("192.0.2.7"), Dst: addr("10.10.0.1"), Proto: "tcp", Dport: 22}, true},
			{"douala LAN to cloud LAN through IPsec", douala, tun(Packet{Hook: "forward", Ct: "new", Src: addr("10.10.0.12"), Dst: addr("10.30.0.11"), Proto: "tcp", Dport: 5432}, false), true},
			{"douala LAN to cloud LAN in clear (cut)", douala, Packet{Hook: "forward", Ct: "new", Src: addr("10.10.0.12"), Dst: addr("10.30.0.11"), Proto: "tcp", Dport: 5432}, false},
			{"cloud LAN to douala LAN through IPsec", douala, tun(Packet{Hook: "forward", Ct: "new", Src: addr("10.30.0.11"), Dst: addr("10.10.0.12"), Proto: "tcp", Dport: 5432}, true), true},
			{"cloud LAN to douala LAN in clear", douala, Packet{Hook: "forward", Ct: "new", Src: addr("10.30.0.11"), Dst: addr("10.10.0.12"), Proto: "tcp", Dport: 5432}, false},
			{"hub transit douala to yaounde", cloud, tun(Packet{Hook: "forward", Ct: "new", Src: addr("10.10.0.12"), Dst: addr("10.20.0.11"), Proto: "tcp", Dport: 5432}, true), true},
			{"douala LAN within the LAN", douala, Packet{Hook: "forward", Ct: "new", Src: addr("10.10.0.11"), Dst: addr("10.10.0.12"), Proto: "tcp", Dport: 2377}, true},
			{"reply to WAN", douala, Packet{Hook: "forward", Ct: "established", Src: hostile, Dst: addr("10.10.0.11"), Proto: "tcp", Dport: 40000}, true},
		}
		if env == "lab" {
			// libipsec: the tunnel interface decides, not an IPsec policy.
			cases[9].p.IPsecOut = true
			cases[9].p.Oif = ""
			cases[9].want = false
		}
		for _, c := range cases {
			if got := c.rs.Eval(c.p); got.Accept != c.want {
				t.Errorf("%s: %s: %s → %v, want accept=%v", env, c.name, c.p, got, c.want)
			}
		}
	}
}

func TestCheckRefusesLockout(t *testing.T) {
	topo := loadEnv(t, "dev")
	rs := build(t, topo, "douala")
	lan, gw := netip.MustParsePrefix("10.10.0.0/24"), addr("10.10.0.1")
	// From the admin network: vici over ssh to the gateway, the engines and the
	// databases in the LAN all pass.
	if _, err := rs.Check(lan, gw, []netip.Addr{addr("192.0.2.7")}); err != nil {
		t.Fatalf("from the admin network: %v", err)
	}
	// From an address outside the admin networks: refused, naming path and rule.
	_, err := rs.Check(lan, gw, []netip.Addr{addr("203.0.113.99")})
	if err == nil {
		t.Fatal("a ruleset that cuts sitectl's path was accepted")
	}
	for _, want := range []string{"vici ssh://ops@10.10.0.1/var/run/charon.vici (tcp/22)", `"default: drop" (chain input)`, "engine ssh://ops@10.10.0.11", `(chain forward)`, "gateway.firewall.admin_networks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal lacks %q:\n%v", want, err)
		}
	}
	// Narrowing admin_networks away from where sitectl runs is refused too.
	rs = build(t, loadEnv(t, "dev", "douala:gateway.firewall.admin_networks=192.0.2.128/25"), "douala")
	if _, err := rs.Check(lan, gw, []netip.Addr{addr("192.0.2.7")}); err == nil {
		t.Fatal("admin_networks without sitectl's address: accepted")
	}
	// The lab reaches everything through unix sockets and the gateway namespace.
	lab := loadEnv(t, "lab")
	rs = build(t, lab, "douala")
	if _, err := rs.Check(lan, gw, nil); err != nil {
		t.Fatalf("lab: %v", err)
	}
	var kinds []string
	for _, p := range rs.Paths {
		kinds = append(kinds, string(p.Kind))
	}
	if strings.Join(kinds, ",") != "local,local,local,from-gateway,from-gateway" {
		t.Errorf("lab douala paths: %v", rs.Paths)
	}
}
