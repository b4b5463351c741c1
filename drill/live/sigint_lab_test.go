package live

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/tunnels"
)

// buildSitectl compiles the CLI in the background; the returned function waits for
// it and returns the binary's path.
func buildSitectl(t *testing.T) func() string {
	bin := filepath.Join(t.TempDir(), "sitectl")
	done := make(chan error, 1)
	go func() {
		out, err := exec.Command("go", "build", "-o", bin, "github.com/sitectl/sitectl/cmd/sitectl").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("build sitectl: %w\n%s", err, out)
		}
		done <- err
	}()
	return func() string {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return bin
	}
}

// sigintMidCut runs `sitectl drill partition` as a process, sends it SIGINT as soon
// as it has cut douala-cloud, and checks that it healed the link before exiting:
// tunnels status says up and a TCP connection crosses the tunnel.
func sigintMidCut(t *testing.T, d *drLab, bin string) {
	args := []string{"--config-dir", d.lab.ConfigDir, "--env", d.topo.Env}
	for _, s := range d.set {
		args = append(args, "--set", s)
	}
	args = append(args, "-o", "json", "drill", "partition", "--site", "douala", "--duration", "60s", "--writes", "200")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SITECTL_LAB_PREFIX="+d.lab.Prefix)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	// The link is cut and the drill is writing: interrupt it like Ctrl-C.
	progress, err := signalAtCut(t, cmd, syscall.SIGINT)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("interrupted drill exited with %v, want exit code 1; stderr:\n%s", err, strings.Join(progress, "\n"))
	}
	var rep drill.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(rep.Error, "interrupted") || rep.HealFailed || len(rep.Heal) == 0 || !rep.Heal[0].Healed {
		t.Fatalf("report after SIGINT: error %q, heal %+v", rep.Error, rep.Heal)
	}
	// -o json: stdout is the report, and stderr still says it was interrupted; no
	// site is blamed for writes the interruption cancelled.
	if !rep.Interrupted || !strings.Contains(strings.Join(progress, "\n"), "sitectl: drill partition interrupted (interrupt signal received): the faults were removed") {
		t.Errorf("interrupted drill, -o json: interrupted=%t; stderr:\n%s", rep.Interrupted, strings.Join(progress, "\n"))
	}
	for _, o := range rep.Observations {
		if !o.OK {
			t.Errorf("interrupted drill reports a failing observation: %s: %s", o.What, o.Detail)
		}
	}
	// The tunnel is up again: status from both gateways, and a TCP connection from
	// douala's LAN side to cloud's database through it.
	st, err := tunnels.Status(context.Background(), d.topo, "douala", "cloud")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Link == "douala-cloud" && s.State != tunnels.StateUp {
			t.Fatalf("tunnels status after the interrupted drill: %+v", s)
		}
	}
	cloudDB := net.JoinHostPort(d.topo.Site("cloud").Gateway.LANAddress, strconv.Itoa(drPort))
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	c, err := netns.DialContext(dctx, d.topo.Site("douala").Lab.Namespace, "tcp", cloudDB)
	if err != nil {
		t.Fatalf("TCP from douala to cloud %s through the tunnel after the interrupted drill: %v", cloudDB, err)
	}
	_ = c.Close()
	t.Logf("SIGINT mid-cut: %s; tunnel douala-cloud up, TCP douala→cloud %s connects", rep.Summary(), cloudDB)
	d.waitStreaming(t)
}

// signalAtCut starts cmd (a `sitectl drill partition` of douala), sends it sig as
// soon as its progress says douala-cloud is cut, and returns its progress lines and
// what Wait returned. The test fails when the drill never reports the cut.
func signalAtCut(t *testing.T, cmd *exec.Cmd, sig os.Signal) ([]string, error) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var progress []string
	sent := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		progress = append(progress, line)
		if !sent && strings.HasPrefix(line, "✓ cut douala-cloud") {
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			sent = true
		}
	}
	err = cmd.Wait()
	if !sent {
		t.Fatalf("the drill never reported the cut; stderr:\n%s", strings.Join(progress, "\n"))
	}
	return progress, err
}
