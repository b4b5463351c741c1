package mongo

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/sitectl/sitectl/internal/mongofake"
	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab/labgate"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/sites"
)

// TestLabServedMembersInNamespaces puts one served fake member in each of three
// network namespaces (mg-cloud, mg-douala, mg-yaounde) on a bridge in mg-br, reaches
// them the way the lab does (through the site's namespace: site.Lab.Namespace), and
// partitions them with iptables in the kernel: the replica set must follow.
func TestLabServedMembersInNamespaces(t *testing.T) {
	labgate.Skip(t)
	for _, bin := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("lab test: %s is not installed", bin)
		}
	}
	ctx := context.Background()
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	names := []string{"cloud", "douala", "yaounde"}
	cleanup := func() {
		for _, n := range append(names, "br") {
			_ = exec.Command("ip", "netns", "del", "mg-"+n).Run()
		}
	}
	cleanup() // a previous run killed before its cleanup
	t.Cleanup(cleanup)
	sh("ip", "netns", "add", "mg-br")
	sh("ip", "-n", "mg-br", "link", "add", "br0", "type", "bridge")
	sh("ip", "-n", "mg-br", "link", "set", "br0", "up")
	topo := loadTopo(t, nil)
	var hosts []string
	for i, n := range names {
		ns, v, p := "mg-"+n, "mg-"+n+"-v", "mg-"+n+"-p"
		ip := fmt.Sprintf("10.251.0.%d", i+1)
		sh("ip", "netns", "add", ns)
		sh("ip", "link", "add", v, "type", "veth", "peer", "name", p)
		sh("ip", "link", "set", v, "netns", ns)
		sh("ip", "link", "set", p, "netns", "mg-br")
		sh("ip", "-n", ns, "link", "set", v, "name", "eth0")
		sh("ip", "-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		sh("ip", "-n", ns, "link", "set", "eth0", "up")
		sh("ip", "-n", ns, "link", "set", "lo", "up")
		sh("ip", "-n", "mg-br", "link", "set", p, "master", "br0", "up")
		host := net.JoinHostPort(ip, "27017")
		hosts = append(hosts, host)
		s := topo.Site(n)
		s.Lab.Namespace = ns
		s.Reach = labreach.Namespace(ns)
		s.Mongo.Members = []sites.MongoMember{{Host: host}}
	}
	var wg sync.WaitGroup
	var lns []net.Listener
	for i, n := range names {
		ln, err := netns.Listen("mg-"+n, "tcp", hosts[i])
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = mongofake.ServeWith(ln, hosts[i], mongofake.Options{Dial: netns.Dialer("mg-" + n)})
		}()
	}
	t.Cleanup(func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
		wg.Wait()
	})
	exerciseServed(t, topo, hosts, func(h string, on bool) {
		ns := "mg-" + SiteOf(topo, h)
		if !on {
			if _, err := netns.Run(ctx, ns, "iptables", "-F"); err != nil {
				t.Fatal(err)
			}
			return
		}
		for _, rule := range [][]string{{"-A", "INPUT", "-i", "eth0", "-j", "DROP"}, {"-A", "OUTPUT", "-o", "eth0", "-j", "DROP"}} {
			if _, err := netns.Run(ctx, ns, append([]string{"iptables"}, rule...)...); err != nil {
				t.Fatal(err)
			}
		}
	})
}
