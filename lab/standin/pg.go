package main

import (
	"fmt"
	"io"
	"io/fs"
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
	// The cluster made at image build time (images.PGTemplateDir, PGTemplateUser;
	// a test keeps them equal): copied instead of running initdb when POSTGRES_USER
	// is its bootstrap user.
	pgTemplateDir  = "/usr/share/sitectl/pgdata-template"
	pgTemplateUser = "sitectl"
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
	db := env("POSTGRES_DB", user)
	var first []string // SQL for the first single-user run
	if _, err := os.Stat(filepath.Join(pgTemplateDir, "PG_VERSION")); err == nil && user == pgTemplateUser {
		if err := copyTree(pgTemplateDir, data); err != nil {
			return fmt.Errorf("copy the template cluster: %w", err)
		}
		// The same rules initdb --auth-local=<local> --auth-host=scram-sha-256 writes.
		local := authLocal()
		hba := "local all all " + local + "\nlocal replication all " + local + "\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n" +
			"host replication all 127.0.0.1/32 scram-sha-256\nhost replication all ::1/128 scram-sha-256\n"
		if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
			return err
		}
		first = append(first, fmt.Sprintf("ALTER USER %q PASSWORD '%s';", user, strings.ReplaceAll(password, "'", "''")))
		fmt.Fprintln(os.Stderr, "sitectl lab: data directory copied from the image's template cluster (made by initdb at image build)")
	} else if err := initdb(data, user, password); err != nil {
		return err
	}
	conf, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(conf, "listen_addresses = '*'")
	if err := conf.Close(); err != nil {
		return err
	}
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(hba, "host all all all scram-sha-256\nhost replication all all scram-sha-256")
	if err := hba.Close(); err != nil {
		return err
	}
	if db != "postgres" {
		first = append(first, fmt.Sprintf("CREATE DATABASE %q OWNER %q;", db, user))
	}
	if len(first) > 0 {
		// -j: a command ends at a semicolon followed by an empty line.
		// log_min_error_statement=panic: a failing statement is not echoed into the
		// log, as the ALTER USER carries the password.
		if err := single(data, "postgres", strings.Join(first, "\n\n")+"\n", "-c", "log_min_error_statement=panic"); err != nil {
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

// initdb makes a new cluster in data with user as its superuser, password from a
// temporary file (never the command line).
func initdb(data, user, password string) error {
	pw, err := os.CreateTemp("", "pw")
	if err != nil {
		return err
	}
	defer os.Remove(pw.Name())
	if _, err := pw.WriteString(password + "\n"); err != nil {
		_ = pw.Close()
		return err
	}
	if err := pw.Close(); err != nil {
		return err
	}
	return runCmd(nil, filepath.Join(pgBin, "initdb"), "-D", data, "-U", user, "--pwfile="+pw.Name(),
		"-E", "UTF8", "--no-locale", "--auth-host=scram-sha-256", "--auth-local="+authLocal())
}

// authLocal is the socket's authentication method: --auth-local from
// POSTGRES_INITDB_ARGS (as the official image passes it to initdb), else trust
// (initdb's default).
func authLocal() string {
	f := strings.Fields(os.Getenv("POSTGRES_INITDB_ARGS"))
	for i, a := range f {
		if v, ok := strings.CutPrefix(a, "--auth-local="); ok {
			return v
		}
		if a == "--auth-local" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return "trust"
}

// single runs SQL through the server's single-user mode (no socket, no network).
func single(data, db, sql string, opts ...string) error {
	args := append([]string{"--single", "-j", "-D", data}, opts...)
	return runCmd(strings.NewReader(sql), filepath.Join(pgBin, "postgres"), append(args, db)...)
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

// copyTree copies the directory src into the existing directory dst, keeping modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			return os.Mkdir(to, fi.Mode().Perm())
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer func() { _ = in.Close() }()
		out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
}
