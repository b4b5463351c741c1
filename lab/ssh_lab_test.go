package lab_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/tunnels"
)

// sshd is a real OpenSSH server on 127.0.0.1 for one test, with its own host key and
// one authorized client key, and an `ssh` first on PATH that is the real client with
// a config naming that key and the server's host key (OpenSSH reads ~/.ssh from the
// password database, not $HOME, so a config file is the way to give it both).
type sshd struct {
	port int
	dir  string
}

// startSSHD starts the server with extra sshd_config lines.
func startSSHD(t *testing.T, config ...string) *sshd {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("ssh test: no /usr/sbin/sshd (make deps installs openssh-server)")
	}
	dir := t.TempDir()
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sitectl-test-"+k, "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowStreamLocalForwarding yes
X11Forwarding no
LogLevel ERROR
`, port, filepath.Join(dir, "host"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"))
	for _, line := range config {
		cfg += line + "\n"
	}
	files := map[string]string{
		"sshd_config":     cfg,
		"authorized_keys": read("client.pub") + "\n",
		"known_hosts":     fmt.Sprintf("[127.0.0.1]:%d %s\n", port, read("host.pub")),
		"ssh_config": fmt.Sprintf("Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
			filepath.Join(dir, "client"), filepath.Join(dir, "known_hosts")),
		"bin/ssh": fmt.Sprintf("#!/bin/sh\nexec /usr/bin/ssh -F %s \"$@\"\n", filepath.Join(dir, "ssh_config")),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The privilege separation directory the package's init script would make.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %d: %v\n%s", port, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Setenv("PATH", filepath.Join(dir, "bin")+":"+os.Getenv("PATH"))
	return &sshd{port: port, dir: dir}
}

func (s *sshd) url(path string) string { return fmt.Sprintf("ssh://root@127.0.0.1:%d%s", s.port, path) }

// testOverSSH: a node's engine and a gateway's vici socket, reached the way a real
// site's are from outside (ssh://), through a real sshd and the real ssh client.
func testOverSSH(ctx context.Context, t *testing.T, l *lab.Layout) {
	site, node := l.Node("douala-app1")
	if node == nil {
		t.Fatal("no douala-app1 in the lab layout")
	}
	// The remote `docker system dial-stdio` reaches the node's engine, as the default
	// socket would on a site host.
	dockerHost := "SetEnv DOCKER_HOST=unix://" + node.Socket
	srv := startSSHD(t, dockerHost)

	t.Run("engine", func(t *testing.T) {
		c, err := engine.New(ctx, engine.Endpoint{Host: srv.url("")})
		if err != nil {
			t.Fatalf("engine over ssh: %v", err)
		}
		defer func() { _ = c.Close() }()
		info, err := c.Info(ctx, client.InfoOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if info.Info.Name != "douala-app1" || info.Info.Swarm.LocalNodeState != "active" {
			t.Errorf("engine over ssh is %q (swarm %s), want douala-app1's, active", info.Info.Name, info.Info.Swarm.LocalNodeState)
		}
	})

	t.Run("vici", func(t *testing.T) {
		c, err := tunnels.Dial(ctx, &tunnels.Gateway{Site: site.Name, Vici: srv.url(site.Vici)})
		if err != nil {
			t.Fatalf("vici over ssh: %v", err)
		}
		names, err := c.ConnNames(ctx)
		c.Close()
		if err != nil {
			t.Fatalf("list-conns over ssh: %v", err)
		}
		t.Logf("%s's charon over ssh: %d connection(s) loaded", site.Name, len(names))
		// The forward ends with the session: its local socket is gone.
		if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "sitectl-vici-*", "charon.vici")); len(left) > 0 {
			t.Errorf("forwarded sockets left after Close: %v", left)
		}
	})

	t.Run("a wrong socket path is one clear error", func(t *testing.T) {
		c, err := tunnels.Dial(ctx, &tunnels.Gateway{Site: site.Name, Vici: srv.url("/nonexistent/charon.vici")})
		if err == nil {
			_, err = c.ConnNames(ctx)
			c.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "did not connect to /nonexistent/charon.vici (ssh: ") || !strings.Contains(err.Error(), "open failed") {
			t.Fatalf("vici over ssh to a missing socket: err = %v, want one naming the path and ssh's reason", err)
		}
		t.Logf("error: %v", err)
	})

	t.Run("an sshd that forwards no sockets is one clear error", func(t *testing.T) {
		strict := startSSHD(t, dockerHost, "AllowTcpForwarding no")
		_, err := tunnels.Dial(ctx, &tunnels.Gateway{Site: site.Name, Vici: strict.url(site.Vici)})
		if err == nil || !strings.Contains(err.Error(), "did not connect to "+site.Vici+" (ssh: ") || !strings.Contains(err.Error(), "open failed") {
			t.Fatalf("vici over ssh through an sshd with AllowTcpForwarding no: err = %v", err)
		}
	})

	t.Run("an unknown host key is refused", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(srv.dir, "known_hosts"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := engine.New(ctx, engine.Endpoint{Host: srv.url("")})
		if err == nil {
			t.Fatal("engine over ssh with an unknown host key: no error")
		}
		_, verr := tunnels.Dial(ctx, &tunnels.Gateway{Site: site.Name, Vici: srv.url(site.Vici)})
		if verr == nil || !strings.Contains(verr.Error(), "Host key verification failed") {
			t.Fatalf("vici over ssh with an unknown host key: err = %v, want ssh's refusal", verr)
		}
		t.Logf("engine: %v\nvici: %v", err, verr)
	})
}
