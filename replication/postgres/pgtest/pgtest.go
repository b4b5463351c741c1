// Package pgtest starts real, throwaway PostgreSQL 15 clusters for tests: initdb and
// postgres run as the `postgres` OS user (initdb refuses root), with their data and
// unix socket in a private temporary directory, listening on 127.0.0.1 on a free port.
// Each cluster gets a superuser login role and a database, like a site's database.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/internal/netns"
)

// BinDir is where Debian installs PostgreSQL 15.
const BinDir = "/usr/lib/postgresql/15/bin"

// Options configure a cluster.
type Options struct {
	// Name labels the cluster in errors and its directory ("douala").
	Name string
	// User, Password and Database are the login role (superuser) and database created.
	User, Password, Database string
	// Settings are extra server settings (-c key=value), e.g. wal_level=logical.
	Settings map[string]string
	// Listen is the TCP address to listen on (default 127.0.0.1). Any other address
	// also admits password logins and replication from anywhere (pg_hba).
	Listen string
	// Port is the TCP port (default: a free port on Listen; required with Namespace).
	Port int
	// Namespace runs the server inside this network namespace (a lab site's gateway
	// namespace), so it listens on that site's LAN. Its unix socket stays reachable.
	Namespace string
}

// Cluster is one running PostgreSQL server.
type Cluster struct {
	Opts   Options
	Dir    string // data dir is Dir/data, socket dir is Dir
	Host   string
	Port   int
	cmd    *exec.Cmd
	done   chan struct{}
	waitMu sync.Mutex
	logf   *os.File
}

// Available reports why real clusters cannot run here ("" when they can).
func Available() string {
	if os.Geteuid() != 0 {
		return "needs root (to run initdb and postgres as the postgres user)"
	}
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err != nil {
		return "PostgreSQL 15 is not installed at " + BinDir + " (apt-get install postgresql-15)"
	}
	if _, err := user.Lookup("postgres"); err != nil {
		return "no postgres OS user (apt-get install postgresql-15 creates it)"
	}
	return ""
}

// Start starts a cluster and stops it when the test ends. It skips the test when
// clusters cannot run here.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if why := Available(); why != "" {
		t.Skip("real PostgreSQL: " + why)
	}
	c, err := StartCluster(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

// StartCluster initialises and starts a cluster; Stop removes it.
func StartCluster(opts Options) (*Cluster, error) {
	if opts.Name == "" {
		opts.Name = "pg"
	}
	if opts.User == "" {
		opts.User = "sitectl"
	}
	if opts.Database == "" {
		opts.Database = "app"
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1"
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}

	dir, err := os.MkdirTemp("", "pgtest-"+opts.Name+"-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Opts: opts, Dir: dir, Host: opts.Listen, done: make(chan struct{})}
	fail := func(err error) (*Cluster, error) {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest %s: %w", opts.Name, err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fail(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fail(err)
	}
	if err := initData(dir, opts.Listen, cred); err != nil {
		return fail(err)
	}
	port := opts.Port
	if port == 0 {
		if opts.Namespace != "" {
			return fail(errors.New("a cluster in a namespace needs Options.Port"))
		}
		if port, err = freePort(opts.Listen); err != nil {
			return fail(err)
		}
	}
	c.Port = port
	if err := c.launch(cred); err != nil {
		return fail(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.bootstrap(ctx); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("pgtest %s: %w; server log: %s", opts.Name, err, c.Log())
	}
	return c, nil
}

// launch starts the server on c.Dir's data, at c.Port.
func (c *Cluster) launch(cred *syscall.Credential) error {
	opts := c.Opts
	args := serverArgs(c.Dir, c.Port, opts)
	logf, err := os.OpenFile(filepath.Join(c.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	c.logf = logf
	cmd := exec.Command(filepath.Join(BinDir, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if opts.Namespace != "" {
		// `ip netns exec` needs root: it drops to postgres with setpriv, after setns.
		cmd = netns.Command(context.Background(), opts.Namespace, append([]string{"setpriv", "--reuid=postgres",
			"--regid=postgres", "--init-groups", "--", filepath.Join(BinDir, "postgres")}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = c.Dir
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return err
	}
	c.cmd = cmd
	done := make(chan struct{})
	c.done = done
	go func() { _ = cmd.Wait(); close(done) }()
	return nil
}

// Halt stops the server and keeps its data directory: Restart starts it again
// (an old instance taken away and brought back).
func (c *Cluster) Halt() error {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	c.halt()
	return nil
}

func (c *Cluster) halt() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
		c.cmd = nil
	}
	if c.logf != nil {
		_ = c.logf.Close()
		c.logf = nil
	}
}

// Restart starts a halted cluster's server again from its data, on port (0: a
// free one), and waits until it answers.
func (c *Cluster) Restart(port int) error {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	if c.cmd != nil {
		return fmt.Errorf("pgtest %s: running", c.Opts.Name)
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if port == 0 {
		if port, err = freePort(c.Opts.Listen); err != nil {
			return err
		}
	}
	c.Port = port
	if err := c.launch(&syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := c.waitReady(ctx)
	if err != nil {
		return fmt.Errorf("pgtest %s: %w; server log: %s", c.Opts.Name, err, c.Log())
	}
	return conn.Close(ctx)
}

// waitReady waits until the server takes connections.
func (c *Cluster) waitReady(ctx context.Context) (*pgx.Conn, error) {
	for {
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", c.Dir, c.Port))
		if err == nil {
			return conn, nil
		}
		select {
		case <-c.done:
			return nil, errors.New("postgres exited during start")
		case <-ctx.Done():
			return nil, fmt.Errorf("not ready: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// initData makes the cluster's data directory in dir, owned by cred, accepting
// password logins from any address unless it listens on 127.0.0.1 only.
func initData(dir, listen string, cred *syscall.Credential) error {
	initdb := exec.Command(filepath.Join(BinDir, "initdb"), "-D", filepath.Join(dir, "data"),
		"-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	if listen != "127.0.0.1" {
		hba, err := os.OpenFile(filepath.Join(dir, "data", "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(hba, "host all all 0.0.0.0/0 scram-sha-256\nhost replication all 0.0.0.0/0 scram-sha-256")
		_ = hba.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// serverArgs are postgres's arguments: the data directory and every setting,
// sorted (the defaults for a test server, then opts.Settings).
func serverArgs(dir string, port int, opts Options) []string {
	settings := map[string]string{
		"listen_addresses":        opts.Listen,
		"port":                    strconv.Itoa(port),
		"unix_socket_directories": dir,
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"shared_buffers":          "32MB",
		"log_min_messages":        "warning",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", filepath.Join(dir, "data")}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		args = append(args, "-c", k+"="+settings[k])
	}
	return args
}

// bootstrap waits for the server and creates the login role and database.
func (c *Cluster) bootstrap(ctx context.Context) error {
	conn, err := c.waitReady(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	// The role's password must not land in the server log (tests check it does not).
	if _, err := conn.Exec(ctx, "SET log_statement = 'none'"); err != nil {
		return err
	}
	pw := "NULL"
	if c.Opts.Password != "" {
		pw = quoteLiteral(c.Opts.Password)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD %s", pgx.Identifier{c.Opts.User}.Sanitize(), pw)); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{c.Opts.Database}.Sanitize(), pgx.Identifier{c.Opts.User}.Sanitize()))
	return err
}

// Connect opens a superuser connection to the cluster's database over its unix socket.
func (c *Cluster) Connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=%s", c.Dir, c.Port, c.Opts.Database))
}

// MustConnect is Connect that fails the test, closed at cleanup.
func (c *Cluster) MustConnect(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := c.Connect(context.Background())
	if err != nil {
		t.Fatalf("connect %s: %v", c.Opts.Name, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Log returns the tail of the server log.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
	s := string(b)
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return strings.TrimSpace(s)
}

// Stop shuts the server down (fast shutdown, then kill) and removes its directory.
func (c *Cluster) Stop() error {
	c.waitMu.Lock()
	defer c.waitMu.Unlock()
	c.halt()
	if c.Dir != "" {
		err := os.RemoveAll(c.Dir)
		c.Dir = ""
		return err
	}
	return nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
