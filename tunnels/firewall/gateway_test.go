package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/sites"
)

// testGateway is a network namespace of this test's own (not a lab): a gateway
// stand-in the runner applies rulesets to.
func testGateway(t *testing.T) *Runner {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a network namespace, nft)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft (make deps installs nftables)")
	}
	ns := fmt.Sprintf("sitectl-fwt-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	r, err := RunnerFor(&sites.Site{Name: "douala", Reach: lab.NamespaceReach(ns)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestApplyRollback(t *testing.T) {
	r := testGateway(t)
	ctx := context.Background()
	topo := loadEnv(t, "lab")
	a := build(t, topo, "douala").Render()
	b := build(t, loadEnv(t, "lab", "douala:values.kong.http_port=8080"), "douala").Render()
	ok := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("probe: vici unreachable") }

	live, want, err := r.Read(ctx, a)
	if err != nil || live != "" || !strings.Contains(want, "table inet sitectl") {
		t.Fatalf("read before: live %q, err %v", live, err)
	}
	// A first apply with a confirmation that never comes: the gateway has no table again.
	if res, err := r.Apply(ctx, a, time.Second, fail); !errors.Is(err, ErrRolledBack) || !res.RolledBack {
		t.Fatalf("unconfirmed apply: %+v, %v; want rolled back", res, err)
	}
	if live, _, _ := r.Read(ctx, a); live != "" {
		t.Fatalf("after a rolled-back first apply the table is there:\n%s", live)
	}
	res, err := r.Apply(ctx, a, 5*time.Second, ok)
	if err != nil || !res.Applied {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	t.Logf("apply with confirmation took %s", res.Took)
	live, want, _ = r.Read(ctx, a)
	if live != want {
		t.Fatalf("after apply, live differs from the rendered ruleset: %q", Diff(live, want))
	}
	// A second apply leaves the same table (and plan sees nothing to do).
	if _, err := r.Apply(ctx, a, 5*time.Second, ok); err != nil {
		t.Fatal(err)
	}
	if live2, _, _ := r.Read(ctx, a); live2 != live {
		t.Fatalf("second apply changed the table: %q", Diff(live, live2))
	}
	// A different ruleset that cannot be confirmed: the previous one is restored.
	_, wantB, _ := r.Read(ctx, b)
	d := Diff(live, wantB)
	if len(d) == 0 || !strings.Contains(strings.Join(d, "\n"), "8080") {
		t.Fatalf("diff to the new ruleset: %q", d)
	}
	if _, err := r.Apply(ctx, b, time.Second, fail); !errors.Is(err, ErrRolledBack) || !strings.Contains(err.Error(), "vici unreachable") {
		t.Fatalf("unconfirmed change: %v", err)
	}
	if got, _, _ := r.Read(ctx, a); got != live {
		t.Fatalf("after rollback the table is not the previous one: %q", Diff(live, got))
	}
	// A ruleset nft rejects changes nothing.
	broken := strings.Replace(b, "meta l4proto esp", "meta l4proto espx", 1)
	if _, err := r.Apply(ctx, broken, time.Second, ok); err == nil || !strings.Contains(err.Error(), "nft refused") {
		t.Fatalf("broken ruleset: %v", err)
	}
	if got, _, _ := r.Read(ctx, a); got != live {
		t.Fatalf("a rejected ruleset changed the table: %q", Diff(live, got))
	}
	cs, present, err := r.Counters(ctx)
	if err != nil || !present || len(cs) != 4 {
		t.Fatalf("counters: %v %v %v", cs, present, err)
	}
}

// TestSSHCommandQuoting: the remote command ssh sends is one string the remote
// user's shell splits back into exactly the script and its arguments (run here with
// sh -c, as sshd runs it); a user other than root goes through sudo -n.
func TestSSHCommandQuoting(t *testing.T) {
	r, err := RunnerFor(&sites.Site{Name: "douala", Gateway: sites.Gateway{Vici: "ssh://root@10.10.0.1:2222/var/run/charon.vici"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := r.Command(context.Background(), `printf '%s|' "$0" "$1" "$2"; echo "it's"`, "a b'c", `$(rm -rf /)`)
	args := cmd.Args
	if args[0] != "ssh" || !slices.Contains(args, "-p") || !slices.Contains(args, "2222") || args[len(args)-3] != "root@10.10.0.1" || args[len(args)-2] != "--" {
		t.Fatalf("ssh argv: %q", args)
	}
	out, err := exec.Command("sh", "-c", args[len(args)-1]).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, want := string(out), "sitectl-firewall|a b'c|$(rm -rf /)|it's\n"; got != want {
		t.Errorf("remote side got %q, want %q", got, want)
	}
	r.SSH.User = url.User("ops")
	if last := r.Command(context.Background(), "true").Args; !strings.HasPrefix(last[len(last)-1], "'sudo' '-n' 'bash'") {
		t.Errorf("non-root user without sudo -n: %q", last)
	}
}

// TestRunnerRefusesLabWithoutReach: a site whose config names a lab namespace but
// whose topology was loaded without labreach.Install gets no runner (it would run
// nft on this machine), and its firewall plan fails with the same error before
// reading or changing anything; with the lab's reach it runs in the namespace.
func TestRunnerRefusesLabWithoutReach(t *testing.T) {
	topo := loadEnv(t, "lab")
	douala := topo.Site("douala")
	douala.Gateway.Firewall.Enabled = true
	douala.Reach = sites.Reach{} // as sites.Load leaves it
	if !douala.InLab() {
		t.Fatalf("lab douala: lab.namespace %q; want a lab site", douala.Lab.Namespace)
	}
	r, err := RunnerFor(douala)
	if err == nil || !strings.Contains(err.Error(), "lab.namespace is \"sl-douala-gw\"") || !strings.Contains(err.Error(), "labreach.Install") {
		t.Fatalf("RunnerFor a lab site without a reach: runner %+v, %v; want a refusal naming lab.namespace and labreach.Install", r, err)
	}
	if steps, perr := (Part{}).Plan(context.Background(), topo, douala); perr == nil || perr.Error() != err.Error() {
		t.Fatalf("plan of a lab site without a reach: %+v, %v; want %v", steps, perr, err)
	}
	douala.Reach = lab.NamespaceReach(douala.Lab.Namespace)
	r, err = RunnerFor(douala)
	if err != nil || r.Where() != "namespace sl-douala-gw" {
		t.Fatalf("with the lab reach: %+v, %v", r, err)
	}
	if args := r.Command(context.Background(), "true").Args; !slices.Equal(args[:4], []string{"ip", "netns", "exec", "sl-douala-gw"}) {
		t.Errorf("with the lab reach the command is %q, want it run through ip netns exec sl-douala-gw", args)
	}
}
