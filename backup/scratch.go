package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Scratch is a PostgreSQL server started on a restored data directory: somewhere
// to look at the past, never the live database.
type Scratch interface {
	// Start starts the server on dir and waits until it has replayed to the target
	// and accepts writes.
	Start(ctx context.Context, dir string) error
	// Wait waits until the server has replayed to the target time and been promoted
	// (password: the restored database's); it fails as soon as the server stops.
	Wait(ctx context.Context, dsn, password string) error
	// DSN is how to reach it (user and database given; the password is the live
	// database's, restored with it).
	DSN(user, database string) string
	// Remove stops the server and deletes the data directory; safe to call twice.
	Remove(ctx context.Context) error
}

// LocalScratch runs the scratch server on this host, as RunAs, on 127.0.0.1:Port
// (the Barman host: restores are local copies there).
type LocalScratch struct {
	Port   int
	RunAs  string // "postgres"
	BinDir string // PGBinDir when empty
	dir    string
}

func (s *LocalScratch) bin(name string) string {
	if s.BinDir == "" {
		return filepath.Join(PGBinDir, name)
	}
	return filepath.Join(s.BinDir, name)
}

func (s *LocalScratch) pgctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", s.RunAs, "--", s.bin("pg_ctl")}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", args[len(args)-1], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Start hands dir to RunAs and starts the server on it.
func (s *LocalScratch) Start(ctx context.Context, dir string) error {
	s.dir = dir
	if out, err := exec.CommandContext(ctx, "chown", "-R", s.RunAs+":", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("scratch: chown %s: %w: %s", dir, err, out)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	// No logical replication worker: the restored catalog holds the site's
	// subscriptions, enabled, naming the peers' slots of the live site; a scratch
	// server that reached a peer would take the live site's changes off its slot.
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c max_logical_replication_workers=0", s.Port, dir)
	log := filepath.Join(dir, "scratch-server.log")
	if err := s.pgctl(ctx, "-D", dir, "-l", log, "-w", "-t", "300", "-o", opts, "start"); err != nil {
		return fmt.Errorf("scratch: %w (log: %s)", err, log)
	}
	return nil
}

// DSN reaches the scratch server over TCP on 127.0.0.1.
func (s *LocalScratch) DSN(user, database string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", s.Port, user, database)
}

// Remove stops the server (immediately: it holds nothing to keep) and deletes the
// data directory with its log.
func (s *LocalScratch) Remove(ctx context.Context) error {
	if s.dir == "" {
		return nil
	}
	var first error
	if _, err := os.Stat(filepath.Join(s.dir, "postmaster.pid")); err == nil {
		first = s.pgctl(ctx, "-D", s.dir, "-m", "immediate", "-w", "stop")
	}
	if err := os.RemoveAll(s.dir); err != nil && first == nil {
		first = err
	}
	s.dir = ""
	return first
}

// Wait waits for the promotion, and fails with the end of the server's log as soon
// as the server is gone (recovery ended before the target: WAL is missing).
func (s *LocalScratch) Wait(ctx context.Context, dsn, password string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(s.dir, "postmaster.pid")); os.IsNotExist(err) {
				log, _ := os.ReadFile(filepath.Join(s.dir, "scratch-server.log"))
				cancel(fmt.Errorf("scratch server stopped during recovery: %s", lastLines(string(log), 3)))
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	err := WaitPromoted(ctx, dsn, password, 5*time.Minute)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// WaitPromoted waits until the server at dsn has finished recovery (replayed to the
// target time and promoted).
func WaitPromoted(ctx context.Context, dsn string, password string, timeout time.Duration) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	cfg.Password = password
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			var inRecovery bool
			err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
			_ = conn.Close(ctx)
			if err == nil && !inRecovery {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("still in recovery")
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("scratch server did not finish recovery in %s: %w", timeout, last)
}
