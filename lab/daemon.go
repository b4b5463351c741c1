package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
)

// dockerdWrapper runs under `ip netns exec` + `unshare --uts`, inside the private
// mount namespace ip netns exec makes: it gives dockerd a hostname, the cgroup
// hierarchies the fresh /sys lacks, and private /run/containerd and /run/docker so a
// system containerd's socket is never reused (shared/LAB.md).
const dockerdWrapper = `#!/bin/sh
# Written by sitectl lab up; runs one node's dockerd.
set -e
hostname "$1"; shift
mount -t tmpfs cgroup_root /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p /sys/fs/cgroup/$c
  mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t cgroup2 none /sys/fs/cgroup/unified
for d in /run/containerd /run/docker; do
  if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi
done
exec dockerd "$@"
`

// startDaemon starts argv in ns with its output in logPath, in its own session so it
// outlives sitectl, and records it.
func (u *upper) startDaemon(name, ns, logPath string, env []string, argv ...string) (Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return Process{}, err
	}
	defer func() { _ = logf.Close() }() // the daemon holds its own copy of the descriptor
	args := append([]string{"netns", "exec", ns}, argv...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Process{}, fmt.Errorf("start %s: %w", name, err)
	}
	p := Process{Name: name, NS: ns, PID: cmd.Process.Pid, Log: logPath}
	p.Start, _ = procStart(p.PID)
	u.state.setProcess(p)
	// Reap it if it dies while we run (and say how it ended); once sitectl exits,
	// init does.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	u.exited[name] = exited
	return p, u.save()
}

// logTail returns the last lines of a daemon's log, for errors.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// launchDockerd starts the node's engine unless a recorded one still answers, and
// returns a function that waits for its API.
func (u *upper) launchDockerd(ctx context.Context, n *NodeLayout) (func() error, error) {
	return u.launchDockerdAt(ctx, n, filepath.Join(n.Dir, "data"))
}

// launchDockerdAt is launchDockerd with the data root given; a new data root starts
// from the golden image store when there is one.
func (u *upper) launchDockerdAt(ctx context.Context, n *NodeLayout, dataRoot string) (func() error, error) {
	name := "dockerd " + n.Name
	if p := u.state.process(name); p != nil && p.Alive() {
		if err := pingEngine(ctx, n.Socket, 5*time.Second); err == nil {
			return func() error { return nil }, nil
		}
	}
	u.changed = true
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return nil, err
	}
	// Written aside and renamed: a shell of another node may be reading it right now.
	wrapper := filepath.Join(u.dir(), "dockerd-wrapper.sh")
	if old, err := os.ReadFile(wrapper); err != nil || string(old) != dockerdWrapper {
		if err := os.WriteFile(wrapper+".tmp", []byte(dockerdWrapper), 0o700); err != nil {
			return nil, err
		}
		if err := os.Rename(wrapper+".tmp", wrapper); err != nil {
			return nil, err
		}
	}
	if u.goldenDir != "" {
		if err := seedDataRoot(u.goldenDir, dataRoot); err != nil {
			return nil, err
		}
	}
	_ = os.Remove(n.Socket)
	p, err := u.startDaemon(name, n.NS, filepath.Join(n.Dir, "dockerd.log"), nil,
		"unshare", "--uts", "/bin/sh", wrapper, n.Name,
		"--data-root", dataRoot,
		"--exec-root", filepath.Join(n.Dir, "exec"),
		"--pidfile", filepath.Join(n.Dir, "docker.pid"),
		"-H", "unix://"+n.Socket,
		"--bip", n.Bip,
		"--default-address-pool", "base="+n.Pool+",size=24",
		"--cgroup-parent", n.CgroupParent,
		"--storage-driver", "overlay2",
		"--log-level", "warn",
	)
	if err != nil {
		return nil, err
	}
	return func() error {
		return u.waitFor(ctx, 30*time.Second, p, func(ctx context.Context) error {
			return pingEngine(ctx, n.Socket, time.Second)
		})
	}, nil
}

// waitFor polls ready until it succeeds, the process dies or the timeout passes.
func (u *upper) waitFor(ctx context.Context, timeout time.Duration, p Process, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case err := <-u.exited[p.Name]:
			return fmt.Errorf("exited during start (%v; log %s):\n%s", err, p.Log, logTail(p.Log, 15))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %v (log %s):\n%s", timeout, last, p.Log, logTail(p.Log, 15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// newEngineClient connects to a lab engine's unix socket.
func newEngineClient(socket string) (*client.Client, error) {
	return client.New(client.WithHost("unix://" + socket)) // negotiates the API version
}

func pingEngine(ctx context.Context, socket string, timeout time.Duration) error {
	if _, err := os.Stat(socket); err != nil {
		return err
	}
	c, err := newEngineClient(socket)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = c.Ping(ctx, client.PingOptions{})
	return err
}

// charonConf is a gateway's strongswan.conf: userspace IPsec through a TUN device
// (the lab kernel has no ESP), a vici socket in the site's state dir, short
// retransmits so dead peers are noticed in seconds (shared/LAB.md).
func charonConf(s *SiteLayout) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `# Written by sitectl lab up for site %s.
charon-systemd {
  load_modular = no
  load = random nonce openssl aes sha1 sha2 hmac gmp pem pkcs1 pkcs8 x509 pubkey constraints revocation kdf gcm kernel-libipsec kernel-netlink socket-default vici updown
  install_routes = yes
  retransmit_timeout = 2.0
  retransmit_base = 1.4
  retransmit_tries = 3
  journal {
    default = -1
  }
  filelog {
    lab {
      path = %s
      time_format = %%F %%T
      default = 1
      ike = 1
      cfg = 1
    }
  }
  plugins {
    vici {
      socket = unix://%s
    }
  }
}
swanctl {
  socket = unix://%s
}
`, s.Name, filepath.Join(s.Dir, "charon.log"), s.Vici, s.Vici)
	return b.Bytes()
}

// startCharon starts the site's charon-systemd unless a recorded one still answers.
func (u *upper) startCharon(ctx context.Context, s *SiteLayout) error {
	name := "charon " + s.Name
	if p := u.state.process(name); p != nil && p.Alive() {
		if err := pingVici(ctx, s.Vici); err == nil {
			return nil
		}
	}
	u.changed = true
	for _, d := range []string{s.Dir, s.PKIDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(s.CharonConf, charonConf(s), 0o600); err != nil {
		return err
	}
	_ = os.Remove(s.Vici)
	p, err := u.startDaemon(name, s.GatewayNS, filepath.Join(s.Dir, "charon.out"),
		[]string{"STRONGSWAN_CONF=" + s.CharonConf}, "charon-systemd")
	if err != nil {
		return err
	}
	if err := u.waitFor(ctx, 15*time.Second, p, func(ctx context.Context) error { return pingVici(ctx, s.Vici) }); err != nil {
		return fmt.Errorf("charon of %s: %w", s.Name, err)
	}
	return nil
}
