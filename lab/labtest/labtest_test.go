package labtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestLabSharedGivesARunningLab(t *testing.T) {
	l := Shared(t)
	if again := Shared(t); again != l {
		t.Fatal("Shared brought up a second lab")
	}
	if got := strings.Join(l.Topo.SiteNames(), ","); got != "cloud,douala,yaounde" {
		t.Fatalf("lab sites = %s", got)
	}
	if l.Topo.Env != "lab" {
		t.Errorf("topology env = %q, want lab", l.Topo.Env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.Exec(ctx, "douala/douala-db1", "ip", "-o", "-4", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(string(out), "10.10.0.12/24") {
		t.Fatalf("exec in douala-db1: %v %s", err, out)
	}
	out, err = l.Docker(ctx, "douala-app1", "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
	if err != nil || !strings.Contains(string(out), "douala-app1 Leader") || !strings.Contains(string(out), "douala-db1") {
		t.Fatalf("douala swarm: %v %s", err, out)
	}
	if _, err := l.Exec(ctx, "paris", "true"); err == nil {
		t.Error("exec in a site the lab lacks succeeded")
	}
}
