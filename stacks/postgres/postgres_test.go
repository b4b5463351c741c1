package postgres_test

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/stacks"
	pgstack "github.com/sitectl/sitectl/stacks/postgres"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// renderedCheck renders douala's postgres stack with the given health_retry and
// returns its health check as an exec.Cmd run by this host's /bin/sh and the real
// pg_isready (PostgreSQL 15), pointed at port.
func renderedCheck(t *testing.T, retry string, port int) *exec.Cmd {
	t.Helper()
	topo := stacktest.Load(t, "dev", "douala:values.postgres.health_retry="+retry)
	r, err := pgstack.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err != nil {
		t.Fatal(err)
	}
	test := stacktest.LoadCompose(t, r).Services[0].HealthCheck.Test
	if len(test) < 5 || test[0] != "CMD" || test[1] != "sh" || test[2] != "-c" {
		t.Fatalf("health test %q, want CMD sh -c <loop> ...", test)
	}
	cmd := exec.Command("/bin/sh", append(test[2:], "-p", strconv.Itoa(port))...)
	cmd.Env = append(os.Environ(), "PATH="+pgtest.BinDir+":/usr/bin:/bin")
	return cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// TestHealthCheckRetriesWhileStarting runs the rendered health check against a
// real PostgreSQL that starts after the check began: it passes at that check. With
// a short retry and no server, it fails.
func TestHealthCheckRetriesWhileStarting(t *testing.T) {
	if why := pgtest.Available(); why != "" {
		t.Skip("real PostgreSQL: " + why)
	}
	port := freePort(t)

	// No server: a 1 s retry gives up, exit 1.
	if none := renderedCheck(t, "1s", port); none.Run() == nil || none.ProcessState.ExitCode() != 1 {
		t.Fatalf("the check with no server listening: exit %d, want 1", none.ProcessState.ExitCode())
	}

	// A generous retry (initdb and start take a few seconds on a busy machine).
	check := renderedCheck(t, "60s", port)
	if err := check.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = check.Process.Kill() })
	done := make(chan error, 1)
	go func() { done <- check.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("the check ended before the server started: %v", err)
	case <-time.After(time.Second):
	}
	pgtest.Start(t, pgtest.Options{Name: "health", Port: port})
	if err := <-done; err != nil {
		t.Fatalf("the check failed although the server started within its retry: %v", err)
	}
}

// TestHealthCheckWithoutRetry: health_retry 0s is one pg_isready, no shell.
func TestHealthCheckWithoutRetry(t *testing.T) {
	topo := stacktest.Load(t, "dev", "douala:values.postgres.health_retry=0s")
	r, err := pgstack.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err != nil {
		t.Fatal(err)
	}
	hc := stacktest.LoadCompose(t, r).Services[0].HealthCheck
	if len(hc.Test) < 2 || hc.Test[0] != "CMD" || hc.Test[1] != "pg_isready" {
		t.Fatalf("health test %q, want CMD pg_isready ...", hc.Test)
	}
	if hc.Timeout == nil || time.Duration(*hc.Timeout) != 3*time.Second {
		t.Errorf("timeout %v, want 3s", hc.Timeout)
	}
	bad := stacktest.Load(t, "dev", "douala:values.postgres.health_retry=soon")
	if _, err := (pgstack.Stack{}).Render(stacks.Input{Topo: bad, Site: bad.Site("douala")}); err == nil || !strings.Contains(err.Error(), "values.postgres.health_retry is soon") {
		t.Errorf("health_retry=soon: %v, want an error naming values.postgres.health_retry", err)
	}
}
