package netns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/lab/labgate"
)

func needRoot(t *testing.T) {
	t.Helper()
	labgate.Skip(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("lab test: needs iproute2 (ip)")
	}
}

// makeNS creates a namespace with lo up and removes it when the test ends.
func makeNS(t *testing.T, name string) {
	t.Helper()
	_ = exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
}

func TestLabDialReachesOnlyInsideNamespace(t *testing.T) {
	needRoot(t)
	ns := fmt.Sprintf("lb-nstest-%d", os.Getpid())
	makeNS(t, ns)
	if !Exists(ns) {
		t.Fatalf("Exists(%s) = false after ip netns add", ns)
	}

	// Listen on the namespace's own loopback; the root namespace's loopback is
	// another device, so only a dial made inside the namespace can reach it.
	l, err := Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	addr := l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "inside")
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	defer func() { _ = srv.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := HTTPClient(ns, 3*time.Second).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET through namespace %s: %v", ns, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "inside" {
		t.Fatalf("body = %q, want %q", body, "inside")
	}

	// The same address from the root namespace is not the namespace's listener.
	if c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr); err == nil {
		_ = c.Close()
		t.Logf("root namespace has its own listener on %s (coincidence); skipping the negative check", addr)
	}

	// The thread that dialled came back: a listener opened now is in the root namespace.
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rl.Close() }()
	if c, err := DialContext(ctx, ns, "tcp", rl.Addr().String()); err == nil {
		_ = c.Close()
		t.Fatalf("dial from %s reached a root-namespace listener at %s", ns, rl.Addr())
	}
	if c, err := (NSDialer{Namespace: ns}).DialContext(ctx, "tcp", addr); err != nil {
		t.Fatalf("NSDialer: %v", err)
	} else {
		_ = c.Close()
	}
	if c, err := DialContext(ctx, "", "tcp", rl.Addr().String()); err != nil {
		t.Fatalf("dial from current namespace: %v", err)
	} else {
		_ = c.Close()
	}
}

func TestLabDialMissingNamespaceSaysSo(t *testing.T) {
	needRoot(t)
	_, err := DialContext(context.Background(), "lb-no-such-ns", "tcp", "127.0.0.1:1")
	if err == nil || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "lab up") {
		t.Fatalf("err = %v, want a missing-namespace error naming the fix", err)
	}
}

func TestLabPIDsFindsProcessesInNamespace(t *testing.T) {
	needRoot(t)
	ns := fmt.Sprintf("lb-nspid-%d", os.Getpid())
	makeNS(t, ns)
	cmd := Command(context.Background(), ns, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(3 * time.Second)
	for {
		pids, err := PIDs(ns)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(pids, cmd.Process.Pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PIDs(%s) = %v, want it to hold %d", ns, pids, cmd.Process.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := Run(context.Background(), ns, "ip", "-o", "link")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "lo:") || strings.Contains(string(out), "eth0") {
		t.Fatalf("links in %s = %q, want only lo", ns, out)
	}
}
