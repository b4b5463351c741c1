package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// PostgreSQL image layout (the lab image is assembled from Debian's postgresql-15).
const (
	pgBin = "/usr/lib/postgresql/15/bin"
	pgUID = 999
	pgGID = 999
)

// pgEntrypoint is the lab PostgreSQL image's entrypoint, honouring the official
// image's contract: POSTGRES_USER, POSTGRES_PASSWORD(_FILE), POSTGRES_DB, PGDATA,
// /docker-entrypoint-initdb.d/*.sql on first start, then `postgres ARGS` as the
// postgres user. Other commands run as given.
func pgEntrypoint(args []string) int {
	if len(args) == 0 {
		args = []string{"postgres"}
	}
	if strings.HasPrefix(args[0], "-") {
		args = append([]string{"postgres"}, args...)
	}
	if args[0] != "postgres" {
		return execOrFail(args)
	}
	if err := pgPrepare(); err != nil {
		fmt.Fprintln(os.Stderr, "docker-entrypoint (sitectl lab):", err)
		return 1
	}
	return execOrFail(append([]string{filepath.Join(pgBin, "postgres")}, args[1:]...))
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func pgPrepare() error {
	data := env("PGDATA", "/var/lib/postgresql/data")
	// Read the password while still root: secret files are often root-only.
	password := os.Getenv("POSTGRES_PASSWORD")
	if f := os.Getenv("POSTGRES_PASSWORD_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("POSTGRES_PASSWORD_FILE: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if os.Geteuid() == 0 {
		for _, d := range []string{data, "/var/run/postgresql"} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			if err := os.Chown(d, pgUID, pgGID); err != nil {
				return err
			}
		}
		if err := os.Chmod(data, 0o700); err != nil {
			return err
		}
		if err := syscall.Setgroups(nil); err != nil {
			return err
		}
		if err := syscall.Setgid(pgGID); err != nil {
			return err
		}
		if err := syscall.Setuid(pgUID); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return nil
	}
	user := env("POSTGRES_USER", "postgres")
	if password == "" {
		return fmt.Errorf("set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (the lab image has no trust mode for the network)")
	}
	pw, err := os.CreateTemp("", "pw")
	if err != nil {
		return err
	}
	defer os.Remove(pw.Name())
	if _, err := pw.WriteString(password + "\n"); err != nil {
		return err
	}
	pw.Close()
	if err := runCmd(nil, filepath.Join(pgBin, "initdb"), "-D", data, "-U", user, "--pwfile="+pw.Name(),
		"-E", "UTF8", "--no-locale", "--auth-host=scram-sha-256", "--auth-local=trust"); err != nil {
		return err
	}
	conf, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(conf, "listen_addresses = '*'")
	conf.Close()
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(hba, "host all all all scram-sha-256\nhost replication all all scram-sha-256")
	hba.Close()
	db := env("POSTGRES_DB", user)
	if db != "postgres" {
		if err := single(data, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %q;\n", db, user)); err != nil {
			return err
		}
	}
	files, _ := filepath.Glob("/docker-entrypoint-initdb.d/*.sql")
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := single(data, db, string(b)); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// single runs SQL through the server's single-user mode (no socket, no network).
func single(data, db, sql string) error {
	return runCmd(strings.NewReader(sql), filepath.Join(pgBin, "postgres"), "--single", "-j", "-D", data, db)
}

func runCmd(stdin *strings.Reader, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(name), err)
	}
	return nil
}

func execOrFail(args []string) int {
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
	if err := syscall.Exec(path, args, os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 126
	}
	return 0
}
