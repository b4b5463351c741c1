package live

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sitectl/sitectl/tunnels"
)

// sitectl runs the CLI against the drill lab's config and returns stdout, stderr
// and the exit code.
func (d *drLab) sitectl(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(d.globalArgs(), args...)...)
	cmd.Env = append(os.Environ(), "SITECTL_LAB_PREFIX="+d.lab.Prefix)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("sitectl %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

func (d *drLab) globalArgs() []string {
	args := []string{"--config-dir", d.lab.ConfigDir, "--env", d.topo.Env}
	for _, s := range d.set {
		args = append(args, "--set", s)
	}
	return args
}

// TestLabDrillHealAfterKill runs `sitectl drill partition` as a process and
// SIGKILLs it right after the cut: no heal runs, the tunnel stays down. The record
// the drill wrote into the swarms before cutting makes status and plan warn, a new
// drill and a deploy refuse, and `sitectl drill heal` bring the tunnel and replication back and
// clear the record; a second heal has nothing to do.
func TestLabDrillHealAfterKill(t *testing.T) {
	getBin := buildSitectl(t)
	d := startDRLab(t)
	bin := getBin()

	// 1. The drill, killed with SIGKILL once douala-cloud is cut.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(d.globalArgs(), "drill", "partition", "--site", "douala", "--duration", "60s", "--writes", "200")...)
	cmd.Env = append(os.Environ(), "SITECTL_LAB_PREFIX="+d.lab.Prefix)
	progress, _ := signalAtCut(t, cmd, syscall.SIGKILL)
	t.Logf("drill killed after:\n%s", strings.Join(progress, "\n"))
	// The fault is left in place: nothing healed it.
	if _, _, code := d.sitectl(t, bin, "tunnels", "status"); code == 0 {
		t.Fatal("tunnels status exits 0 right after the killed drill: the cut was not left in place, the test proves nothing")
	}

	// 2. status and plan warn, naming what was left and the command that heals it;
	// a new drill refuses.
	wantLeft := func(what, out string) {
		t.Helper()
		for _, w := range []string{"partition drill of douala", "was killed at", "tunnel douala-cloud cut", "run `sitectl drill heal`"} {
			if !strings.Contains(out, w) {
				t.Errorf("%s does not say %q:\n%s", what, w, out)
			}
		}
	}
	_, errOut, _ := d.sitectl(t, bin, "status")
	wantLeft("status", errOut)
	for _, line := range strings.Split(errOut, "\n") {
		if strings.Contains(line, "was killed at") {
			t.Logf("status says: %s", line)
		}
	}
	_, errOut, _ = d.sitectl(t, bin, "plan", "--site", "cloud")
	wantLeft("plan --site cloud", errOut)
	_, errOut, code := d.sitectl(t, bin, "drill", "partition", "--site", "yaounde", "--duration", "5s", "--writes", "10")
	if code != 1 || !strings.Contains(errOut, "drill partition refused, nothing was changed") {
		t.Errorf("a new drill with a dead drill's fault left: exit %d\n%s", code, errOut)
	}
	wantLeft("drill partition", errOut)
	_, errOut, code = d.sitectl(t, bin, "deploy", "--site", "douala")
	if code != 1 || !strings.Contains(errOut, "deploy refused, nothing was changed") {
		t.Errorf("deploy with a dead drill's fault left: exit %d\n%s", code, errOut)
	}
	wantLeft("deploy", errOut)

	// 3. heal: the tunnel is up (tunnels status exits 0), replication streams, the
	// record is gone.
	t0 := time.Now()
	out, errOut, code := d.sitectl(t, bin, "drill", "heal")
	if code != 0 || !strings.Contains(out, "✓ partition drill run") || !strings.Contains(out, "removed tunnel douala-cloud cut; record cleared") {
		t.Fatalf("drill heal: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("FIGURE: sitectl drill heal after a SIGKILLed partition drill took %s:\n%s", time.Since(t0).Round(time.Millisecond), out)
	if tout, terr, code := d.sitectl(t, bin, "tunnels", "status"); code != 0 {
		t.Fatalf("tunnels status after drill heal: exit %d\n%s\n%s", code, tout, terr)
	}
	st, err := tunnels.Status(context.Background(), d.topo, "douala", "cloud")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Link == "douala-cloud" && s.State != tunnels.StateUp {
			t.Fatalf("douala-cloud after drill heal: %+v", s)
		}
	}
	d.waitStreaming(t)

	// 4. Idempotent: nothing left, nothing to do; status no longer warns.
	out, errOut, code = d.sitectl(t, bin, "drill", "heal")
	if code != 0 || !strings.Contains(out, "nothing to heal") {
		t.Fatalf("second drill heal: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, _ = d.sitectl(t, bin, "status"); strings.Contains(errOut, "drill") {
		t.Fatalf("status still reports a drill after the heal:\n%s", errOut)
	}
}
