// Package netns reaches into Linux network namespaces from the root namespace: a
// dialer that opens a socket inside a named namespace (/run/netns/<name>, as made by
// `ip netns add`), and helpers to run commands there. The lab uses it because the root
// namespace has no route into a site's LAN: databases, HTTP checks and probes dial
// through the site's gateway namespace instead.
package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is where `ip netns` keeps its named namespaces.
const Dir = "/run/netns"

// Path returns the bind-mounted file of the named namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

// Exists reports whether the named namespace exists.
func Exists(name string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(Path(name), &st); err != nil {
		return false
	}
	// A live namespace file is an nsfs mount; a leftover empty file is not.
	return st.Type == unix.NSFS_MAGIC
}

// List returns the named namespaces in Dir, sorted as os.ReadDir sorts.
func List() ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

// Do runs fn with the calling goroutine's OS thread switched into the named network
// namespace. Sockets created inside fn belong to that namespace for their whole life.
// fn must not start goroutines that create sockets: they run on other threads.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	target, err := unix.Open(Path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w (is the lab up? `sitectl lab status`)", name, err)
	}
	defer func() { _ = unix.Close(target) }()

	runtime.LockOSThread()
	orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current network namespace: %w", err)
	}
	defer func() { _ = unix.Close(orig) }()
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w (needs root)", name, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the wrong namespace: keep it locked so it exits with
		// the goroutine instead of serving other goroutines.
		return fmt.Errorf("return from network namespace %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// DialContext connects to addr on network ("tcp", "udp", ...) from inside the named
// namespace; an empty name dials from the current namespace. The address must be an
// IP literal or a name resolvable from the current namespace.
func DialContext(ctx context.Context, name, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := Do(name, func() error {
		var d net.Dialer
		// One address, dialled serially on this (locked) thread: the socket is made here.
		d.FallbackDelay = -1
		c, err := d.DialContext(ctx, network, addr)
		conn = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s in namespace %s: %w", network, addr, nsLabel(name), err)
	}
	return conn, nil
}

// Dialer returns a DialContext bound to one namespace, the shape pgx, mongo-driver
// and net/http want.
func Dialer(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return DialContext(ctx, name, network, addr)
	}
}

// NSDialer dials from inside one namespace; it is a ContextDialer (the shape
// mongo-driver's options.Client().SetDialer and net/http want).
type NSDialer struct{ Namespace string }

// DialContext dials from inside the dialer's namespace.
func (d NSDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return DialContext(ctx, d.Namespace, network, addr)
}

// Listen opens a listener inside the named namespace.
func Listen(name, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(name, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in namespace %s: %w", network, addr, nsLabel(name), err)
	}
	return l, nil
}

// HTTPClient returns an HTTP client whose connections are made inside the named
// namespace.
func HTTPClient(name string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       Dialer(name),
			DisableKeepAlives: true,
		},
	}
}

// Command returns a command that runs argv inside the named namespace through
// `ip netns exec` (which also gives it the namespace's /sys and /etc/netns files).
func Command(ctx context.Context, name string, argv ...string) *exec.Cmd {
	args := append([]string{"netns", "exec", name}, argv...)
	return exec.CommandContext(ctx, "ip", args...)
}

// Run runs argv inside the named namespace and returns its combined output; a failure
// keeps the output in the error.
func Run(ctx context.Context, name string, argv ...string) ([]byte, error) {
	out, err := Command(ctx, name, argv...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("in namespace %s: %s: %w: %s", name, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Inode returns the inode of the named namespace, the identity /proc/<pid>/ns/net
// links carry ("net:[<inode>]").
func Inode(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(Path(name), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// PIDs returns the processes whose network namespace is one of names.
func PIDs(names ...string) ([]int, error) {
	want := map[uint64]bool{}
	for _, n := range names {
		if ino, err := Inode(n); err == nil {
			want[ino] = true
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid <= 0 {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
			continue
		}
		if want[st.Ino] {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func nsLabel(name string) string {
	if name == "" {
		return "(current)"
	}
	return name
}
