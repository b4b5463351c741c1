package postgres

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/ci"
	"github.com/sitectl/sitectl/sites"
)

// verifyJob is the generated pipeline's `verify:dev:replication` job run against the
// lab's clusters: its replication status script line in bash -eo pipefail (as a
// GitLab runner runs it), with bin/sitectl built from this tree and the CI/CD
// variables pointing sitectl at the clusters.
type verifyJob struct {
	l       *lab
	dir     string // job working directory: bin/sitectl
	script  string
	environ []string
}

func newVerifyJob(t *testing.T, l *lab) *verifyJob {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: l.dir, Env: "dev", Environ: []string{"SITECTL_PG_PASSWORD=" + testPassword}, Set: l.setFlags()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ci.Generate(topo, ci.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const name = "verify:dev:replication"
	job := p.Job(name)
	if job == nil || len(job.Script) == 0 {
		t.Fatalf("the dev pipeline has no job %s", name)
	}
	// Its replication status line; the job's mongo status line needs MongoDB, which
	// these clusters do not run (ci's own test runs every line with a stand-in).
	var lines []string
	for _, line := range job.Script {
		if strings.HasPrefix(line, "bin/sitectl replication status ") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%s runs replication status %d times: %q", name, len(lines), job.Script)
	}
	v := &verifyJob{l: l, dir: t.TempDir(), script: strings.Join(lines, "\n")}
	build := exec.Command("go", "build", "-o", filepath.Join(v.dir, "bin", "sitectl"), "github.com/sitectl/sitectl/cmd/sitectl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sitectl: %v\n%s", err, out)
	}
	v.environ = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + v.dir, "SITECTL_CONFIG_DIR=" + l.dir, "SITECTL_PG_PASSWORD=" + testPassword, "SITECTL_PG_APP_PASSWORD=" + testPassword + "-app"}
	for k, val := range job.Variables {
		v.environ = append(v.environ, k+"="+val)
	}
	// The lab's --set overrides as the SITECTL_* variables a CI job would set.
	for _, set := range l.setFlags() {
		kv, val, _ := strings.Cut(set, "=")
		name := "SITECTL_"
		if site, key, ok := strings.Cut(kv, ":"); ok {
			name += envKey(site) + "__"
			kv = key
		}
		v.environ = append(v.environ, name+envKey(kv)+"="+val)
	}
	t.Logf("verify job script:\n%s", v.script)
	return v
}

func envKey(k string) string {
	return strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(k))
}

// run runs the job's script and returns its exit code and output.
func (v *verifyJob) run(t *testing.T) (int, string, string) {
	t.Helper()
	cmd := exec.Command("bash", "-eo", "pipefail", "-c", v.script)
	cmd.Dir, cmd.Env = v.dir, v.environ
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("run the verify job: %v", err)
	return -1, "", ""
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// A link that drops packets (a cut tunnel: both ends keep their connection and hear
// nothing until the 30 s timeouts) shows as stalled within seconds, and the CI verify
// job then fails, saying so in its last line; after the heal (before the timeouts) the
// same connections carry on and the job passes again. A link whose connections are
// closed disables the subscriptions (disable_on_error): the job fails until they are
// resumed. A site that cannot be read fails it too, with no ✓.
func TestLabReplicationStatusFails(t *testing.T) {
	ctx := context.Background()
	l := startLab(t)
	if err := l.plan(ctx).Apply(ctx, nil); err != nil {
		t.Fatalf("apply: %v\n%s", err, l.clusterLogs())
	}
	job := newVerifyJob(t, l)
	l.waitStreaming(60 * time.Second)

	code, out, errOut := job.run(t)
	if code != 0 || !strings.HasPrefix(lastLine(out), "✓ all 4 replication flows work") || !strings.Contains(errOut, "✓ read replication status") {
		t.Fatalf("verify job with every flow streaming: exit %d\n%s%s", code, out, errOut)
	}

	// Partition douala: its publisher's proxy holds every byte, and the hub's holds
	// those of douala's subscription to it.
	toDouala := Flow{From: l.topo.Hub, To: "douala"}.Name()
	l.proxies["douala"].Partition()
	l.proxies[l.topo.Hub].Partition(toDouala)
	cutAt := time.Now()
	var r *Report
	for {
		r = l.status()
		in, out := l.flow(r, "douala", l.topo.Hub), l.flow(r, l.topo.Hub, "douala")
		if in.State == StateStalled && out.State == StateStalled {
			break
		}
		if (in.State != StateStreaming && in.State != StateStalled) || (out.State != StateStreaming && out.State != StateStalled) || time.Since(cutAt) > 25*time.Second {
			t.Fatalf("%s after the partition, want douala's flows streaming then stalled:\n%s", time.Since(cutAt).Round(time.Millisecond), l.statusText())
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("FIGURE both douala flows stalled %s after the partition (wal_receiver_status_interval 1s)", time.Since(cutAt).Round(100*time.Millisecond))
	for _, f := range r.Flows {
		if f.From != "douala" && f.To != "douala" && f.State != StateStreaming {
			t.Errorf("%s is %s (%s) while only douala is cut", f.Flow, f.State, f.Reason)
		}
	}
	code, out, errOut = job.run(t)
	t.Logf("verify job %s after the partition: exit %d\n%s", time.Since(cutAt).Round(100*time.Millisecond), code, out)
	if code == 0 || !strings.HasPrefix(lastLine(out), "✗ 2 of 4 replication flows do not work") || !strings.Contains(lastLine(out), "douala → cloud stalled (no message for") {
		t.Errorf("verify job during the partition: exit %d, last line %q\n%s", code, lastLine(out), errOut)
	}
	l.heal()
	healedAt := time.Now()
	if held := healedAt.Sub(cutAt); held > 25*time.Second {
		t.Logf("the partition lasted %s: the 30 s timeouts may have dropped the connections", held.Round(time.Second))
	}
	l.waitStreaming(30 * time.Second)
	t.Logf("FIGURE streaming again %s after the heal", time.Since(healedAt).Round(100*time.Millisecond))
	for _, sub := range []string{toDouala, Flow{From: "douala", To: l.topo.Hub}.Name()} {
		site := l.topo.Hub
		if sub == toDouala {
			site = "douala"
		}
		if n := l.queryInt(site, `SELECT count(*) FROM pg_subscription WHERE subname = $1 AND subenabled`, sub); n != 1 {
			t.Errorf("%s was disabled by a partition shorter than the timeouts", sub)
		}
	}
	if code, out, errOut = job.run(t); code != 0 {
		t.Errorf("verify job after the heal: exit %d\n%s%s", code, out, errOut)
	}

	// A cut that closes the connections: PostgreSQL 15 disables both subscriptions.
	l.cutSite("douala")
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = l.status()
		if f := l.flow(r, "douala", l.topo.Hub); f.State == StateDisabled || f.State == StateDisabledBy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a cut closing the connections, want douala → %s disabled:\n%s", l.topo.Hub, l.statusText())
		}
		time.Sleep(250 * time.Millisecond)
	}
	code, out, _ = job.run(t)
	if code == 0 || !strings.HasPrefix(lastLine(out), "✗ ") || !strings.Contains(lastLine(out), "douala → cloud disabled") {
		t.Errorf("verify job with douala's subscriptions disabled: exit %d, last line %q", code, lastLine(out))
	}
	l.heal()
	if _, err := Resume(ctx, l.topo, l.sess); err != nil {
		t.Fatal(err)
	}
	l.waitStreaming(30 * time.Second)
	if code, out, errOut = job.run(t); code != 0 {
		t.Errorf("verify job after resume: exit %d\n%s%s", code, out, errOut)
	}

	// A site that cannot be read: an error row, exit 1, no ✓ anywhere.
	job.environ = append(job.environ, "SITECTL_YAOUNDE__POSTGRES_PORT=1")
	code, out, errOut = job.run(t)
	if code != 1 || strings.Contains(out+errOut, "✓") || !strings.Contains(errOut, "✗ read replication status") ||
		!strings.Contains(lastLine(out), "yaounde → cloud unknown") || !strings.Contains(out, "cannot reach yaounde's PostgreSQL") {
		t.Errorf("verify job with yaounde unreadable: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "s3cret") {
		t.Errorf("the output shows the password")
	}
}
