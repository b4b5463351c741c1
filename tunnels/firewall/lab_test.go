package firewall_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/audit"
	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
	"github.com/sitectl/sitectl/tunnels/firewall"
	"github.com/sitectl/sitectl/tunnels/tunneltest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// hostilePorts are what the issue found open from the WAN: PostgreSQL, swarm,
// Prometheus, Grafana, Elasticsearch, Kibana, MongoDB, and Kong's proxy port.
var hostilePorts = []int{5432, 2377, 7946, 9090, 3000, 9200, 5601, 27017, 80}

// TestLabFirewall: on the shared lab, a hostile WAN neighbour (the WAN namespace
// with a route to each site's LAN via that site's gateway) reaches every probed port
// on every node before the firewall, and after the gateway firewall step only Kong's
// proxy port on the edge nodes; IKE from it is dropped and counted. The tunnels stay
// up, LAN to LAN through them still works, a cut (vici) still partitions and the
// traffic it would have leaked in clear over the WAN is dropped and counted; a
// second apply is a no-op. Figures: apply time, iperf3 through the tunnel with and
// without the ruleset.
func TestLabFirewall(t *testing.T) {
	l := labtest.Shared(t)
	topo := l.Topo
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	wan := l.State.Layout.WANNS

	// The tunnels, as deploy's tunnels part installs them.
	gws, err := tunnels.Build(topo)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gws {
		s := topo.Site(g.Site)
		ca, gwp := tunnels.SiteCerts(topo, s)
		if _, _, err := tunnels.Ensure(ca, gwp, g.ID, s.Tunnel.KeyType, s.Tunnel.CertLifetime.D()); err != nil {
			t.Fatal(err)
		}
		if err := tunneltest.Install(ctx, topo, g); err != nil {
			t.Fatal(err)
		}
	}
	linksUp := func(when string) {
		t.Helper()
		for _, link := range topo.Links {
			if err := tunnels.WaitUp(ctx, topo, link.Name(), 30*time.Second); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
		}
	}
	linksUp("before the firewall")

	// Leave the lab as found: no table, no hostile routes.
	t.Cleanup(func() {
		for _, s := range topo.Sites {
			_, _ = netns.Run(context.Background(), s.Lab.Namespace, "nft", "delete", "table", "inet", firewall.Table)
		}
	})
	for _, s := range topo.Sites {
		if _, err := netns.Run(ctx, wan, "ip", "route", "replace", s.LAN, "via", s.Gateway.WANAddress); err != nil {
			t.Fatal(err)
		}
		lan := s.LAN
		t.Cleanup(func() { _, _ = netns.Run(context.Background(), wan, "ip", "route", "del", lan) })
	}
	// Something answers on every probed port of every node: the lab's own services
	// where they run, else a listener of this test.
	for _, s := range topo.Sites {
		for _, n := range s.Nodes {
			ns, err := l.Namespace(s.Name + "/" + n.Name)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range hostilePorts {
				ln, err := netns.Listen(ns, "tcp", fmt.Sprintf("0.0.0.0:%d", p))
				if err != nil {
					continue // in use: the lab's own service answers
				}
				t.Cleanup(func() { _ = ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						_ = c.Close()
					}
				}()
			}
		}
	}
	probe := func() map[string]bool {
		open := map[string]bool{}
		for _, s := range topo.Sites {
			for _, n := range s.Nodes {
				for _, p := range hostilePorts {
					addr := net.JoinHostPort(n.Address, fmt.Sprint(p))
					dctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
					c, err := netns.DialContext(dctx, wan, "tcp", addr)
					cancel()
					if err == nil {
						_ = c.Close()
						open[s.Name+" "+addr] = true
					} else if errors.Is(err, syscall.ECONNREFUSED) {
						open[s.Name+" "+addr+" (refused)"] = true
					}
				}
			}
		}
		return open
	}
	before := probe()
	t.Logf("hostile WAN neighbour before the firewall: %d answers: %v", len(before), slices.Sorted(maps.Keys(before)))
	for _, s := range topo.Sites {
		if !before[s.Name+" "+net.JoinHostPort(s.Postgres.Host, "5432")] {
			t.Errorf("before the firewall %s's PostgreSQL address %s:5432 does not answer from the WAN: the probe proves nothing", s.Name, s.Postgres.Host)
		}
	}
	auditRun := func(when string) *audit.Report {
		t.Helper()
		rep, err := audit.Run(ctx, topo, topo.Sites, audit.Options{ExposureOnly: true})
		if err != nil {
			t.Fatalf("audit %s: %v", when, err)
		}
		t.Logf("audit %s: %d probes from %s in %s, %d high", when, rep.Probes, rep.From, rep.Took.Round(time.Millisecond), rep.Highs())
		return rep
	}
	if rep := auditRun("before the firewall"); rep.Highs() == 0 {
		t.Errorf("audit before the firewall finds nothing high: %+v", rep.Findings)
	} else {
		for _, s := range topo.Sites {
			obj := net.JoinHostPort(s.Postgres.Host, "5432") + "/tcp"
			if !slices.ContainsFunc(rep.Findings, func(f audit.Finding) bool { return f.Site == s.Name && f.Object == obj && f.Severity == audit.High }) {
				t.Errorf("audit before the firewall does not name %s %s", s.Name, obj)
			}
		}
	}
	mbps := func(when string) float64 { return iperf(ctx, t, l, topo, when) }
	before1 := mbps("without the ruleset")

	// The gateway firewall step, as deploy runs it.
	var took time.Duration
	for _, s := range topo.Sites {
		steps, err := firewall.Part{}.Plan(ctx, topo, s)
		if err != nil {
			t.Fatalf("plan %s: %v", s.Name, err)
		}
		if len(steps) != 1 || steps[0].Action != plan.Create || steps[0].Apply == nil {
			t.Fatalf("plan %s: %+v, want one create step", s.Name, steps)
		}
		t0 := time.Now()
		if err := steps[0].Apply(ctx); err != nil {
			t.Fatalf("apply %s: %v", s.Name, err)
		}
		d := time.Since(t0)
		took += d
		t.Logf("firewall apply %s (with confirmation over vici and the database paths): %s", s.Name, d.Round(time.Millisecond))
	}
	t.Logf("firewall apply, three gateways one after the other: %s", took.Round(time.Millisecond))
	for _, s := range topo.Sites {
		steps, err := firewall.Part{}.Plan(ctx, topo, s)
		if err != nil || len(steps) != 1 || steps[0].Action != plan.Noop {
			t.Fatalf("second plan %s: %+v %v, want a no-op", s.Name, steps, err)
		}
	}

	// A changed edge port: the plan shows the rule that changes, as a diff.
	moved, err := sites.Load(sites.Options{Dir: l.ConfigDir, Env: topo.Env, Environ: []string{}, Set: []string{"douala:values.kong.http_port=8080"}})
	if err != nil {
		t.Fatal(err)
	}
	labreach.Install(moved)
	steps, err := firewall.Part{}.Plan(ctx, moved, moved.Site("douala"))
	if err != nil || len(steps) != 1 || steps[0].Action != plan.Update {
		t.Fatalf("plan with http_port 8080: %+v %v, want one update", steps, err)
	}
	var shown strings.Builder
	_ = (&plan.Plan{Env: topo.Env, Sites: []plan.SitePlan{{Site: "douala", Steps: steps}}}).Render(&shown)
	t.Logf("plan with values.kong.http_port=8080:\n%s", shown.String())
	if !strings.Contains(shown.String(), "~ gateway firewall") || !strings.Contains(shown.String(), "- ip daddr 10.10.0.11 tcp dport { 80, 443 } accept") ||
		!strings.Contains(shown.String(), "+ ip daddr 10.10.0.11 tcp dport { 443, 8080 } accept") {
		t.Errorf("the plan does not show the changed rule as a diff:\n%s", shown.String())
	}

	after := probe()
	t.Logf("hostile WAN neighbour after the firewall: %v", slices.Sorted(maps.Keys(after)))
	want := map[string]bool{}
	for _, s := range topo.Sites {
		rs, err := firewall.Build(topo, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range s.Nodes {
			v := rs.Eval(firewall.Packet{Hook: "forward", Ct: "new", Src: netipAddr(t, "203.0.113.1"), Dst: netipAddr(t, n.Address), Proto: "tcp", Dport: 80})
			if v.Accept {
				want[s.Name+" "+net.JoinHostPort(n.Address, "80")] = true
			}
		}
	}
	if len(want) == 0 || !sameKeys(after, want) {
		t.Errorf("after the firewall the WAN reaches %v; want only Kong's port on the edge nodes %v", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(want)))
	}
	if rep := auditRun("after the firewall"); rep.Highs() > 0 {
		t.Errorf("audit after the firewall: %+v", rep.Findings)
	}
	// IKE from a WAN address that is no peer: dropped and counted.
	douala := topo.Site("douala")
	r, _ := firewall.RunnerFor(douala)
	dropped := func(name string) uint64 {
		cs, _, err := r.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Name == name {
				return c.Packets
			}
		}
		t.Fatalf("no counter %s in %v", name, cs)
		return 0
	}
	in0 := dropped(firewall.CounterInputDrop)
	if c, err := netns.DialContext(ctx, wan, "udp", net.JoinHostPort(douala.Gateway.WANAddress, "500")); err == nil {
		_, _ = c.Write([]byte("not IKE"))
		_ = c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	if in1 := dropped(firewall.CounterInputDrop); in1 <= in0 {
		t.Errorf("UDP 500 from the WAN router: input_drop %d → %d, want it counted", in0, in1)
	}

	// The tunnels still work through the ruleset: up, and LAN to LAN.
	linksUp("with the firewall")
	cloud := topo.Site("cloud")
	cloudPG := net.JoinHostPort(cloud.Postgres.Host, "5432")
	doualaNode, _ := l.Namespace("douala/" + douala.Nodes[0].Name)
	lanToLAN := func() error {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c, err := netns.DialContext(dctx, doualaNode, "tcp", cloudPG)
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	if err := lanToLAN(); err != nil {
		t.Fatalf("douala node → cloud postgres through the tunnel with the firewall: %v", err)
	}
	// A partition is a cut of the tunnel: with the hostile routes in place, the cut
	// link's traffic would go over the WAN in clear; the firewall drops it (leak).
	leak0 := dropped(firewall.CounterLeak)
	if err := tunnels.Cut(ctx, topo, "douala-cloud"); err != nil {
		t.Fatal(err)
	}
	healed := false
	defer func() {
		if !healed {
			_ = tunnels.Heal(context.Background(), topo, "douala-cloud")
		}
	}()
	if err := lanToLAN(); err == nil {
		t.Fatal("douala-cloud cut, yet douala reaches cloud's postgres")
	}
	if leak1 := dropped(firewall.CounterLeak); leak1 <= leak0 {
		t.Errorf("during the cut: leak counter %d → %d, want the clear-text packets counted", leak0, leak1)
	}
	if err := tunnels.Heal(ctx, topo, "douala-cloud"); err != nil {
		t.Fatalf("heal through the firewall (a new IKE_SA): %v", err)
	}
	healed = true
	if err := lanToLAN(); err != nil {
		t.Fatalf("after the heal: %v", err)
	}
	after1 := mbps("with the ruleset")
	for _, s := range topo.Sites {
		if _, err := netns.Run(ctx, s.Lab.Namespace, "nft", "delete", "table", "inet", firewall.Table); err != nil {
			t.Fatal(err)
		}
	}
	before2 := mbps("without the ruleset, again")
	t.Logf("iperf3 douala node → cloud node through the tunnel: %.0f Mbit/s without the ruleset, %.0f Mbit/s with it, %.0f Mbit/s without it again", before1, after1, before2)
}

// iperf measures TCP throughput from a douala node to a cloud node (3 s), in Mbit/s;
// 0 when iperf3 is missing.
func iperf(ctx context.Context, t *testing.T, l *labtest.Lab, topo *sites.Topology, when string) float64 {
	t.Helper()
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Logf("iperf3 not installed: no throughput figure %s", when)
		return 0
	}
	cloud, douala := topo.Site("cloud"), topo.Site("douala")
	cns, _ := l.Namespace("cloud/" + cloud.Nodes[0].Name)
	dns, _ := l.Namespace("douala/" + douala.Nodes[0].Name)
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", cns, "iperf3", "-s", "-1", "-p", "5299", "-B", cloud.Nodes[0].Address)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", dns, "iperf3", "-c", cloud.Nodes[0].Address, "-p", "5299", "-t", "3", "-J").Output()
	if err != nil {
		t.Logf("iperf3 %s: %v: %s", when, err, out)
		return 0
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Logf("iperf3 %s: %v", when, err)
		return 0
	}
	return res.End.SumReceived.BitsPerSecond / 1e6
}

func sameKeys(a, b map[string]bool) bool {
	return strings.Join(slices.Sorted(maps.Keys(a)), ",") == strings.Join(slices.Sorted(maps.Keys(b)), ",")
}

func netipAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
