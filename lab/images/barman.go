package images

import (
	"archive/tar"
	_ "embed"
	"strings"

	"github.com/sitectl/sitectl/backup"
)

//go:embed barman/entrypoint.sh
var barmanEntrypoint []byte

// barmanSpec is the Barman image of stacks/backup.
var barmanSpec = Spec{Logical: "barman", Ref: Repo + "barman:lab", Real: true, Source: "Debian barman, postgresql-client-15, rsync (host package files + shared libraries)"}

// barmanPackages are the Debian packages the Barman image is made of.
var barmanPackages = []string{"barman", "python3-barman", "python3-argcomplete", "python3-dateutil", "python3-psycopg2", "python3-six",
	"python3.11", "libpython3.11-stdlib", "libpython3.11-minimal", "postgresql-client-15", "rsync", "coreutils", "grep", "dash"}

// barmanRecipe builds Barman 3.4 with PostgreSQL 15's pg_basebackup and
// pg_receivewal (streaming only: nothing runs in the database container), rsync for
// `barman recover`, sitectl's entrypoint (lab/images/barman/entrypoint.sh) and its
// exporter (backup.ExporterScript).
func barmanRecipe() recipe {
	return recipe{
		spec:     barmanSpec,
		packages: barmanPackages,
		extra:    func() []byte { return append(append([]byte{}, barmanEntrypoint...), backup.ExporterScript...) },
		build: func(r *rootfs, standin string) error {
			if err := base(r, standin); err != nil {
				return err
			}
			skip := func(p string) bool {
				if skipDocs(p) {
					return true
				}
				for _, x := range []string{"/zoneinfo/right/", "/zoneinfo/posix/", "/test/", "/tests/", "/idlelib", "/tkinter", "/ensurepip", "/lib2to3", "/turtledemo", "/__pycache__"} {
					if strings.Contains(p+"/", x) {
						return true
					}
				}
				return false
			}
			for _, p := range []string{"/usr/bin/python3.11", "/usr/lib/python3.11", "/usr/share/zoneinfo", "/usr/bin/barman",
				"/usr/lib/postgresql/15/bin/pg_basebackup", "/usr/lib/postgresql/15/bin/pg_receivewal", "/usr/lib/postgresql/15/bin/pg_verifybackup",
				"/usr/bin/rsync", "/usr/bin/cat", "/usr/bin/chown", "/usr/bin/chmod", "/usr/bin/mkdir", "/usr/bin/grep", "/usr/bin/rm", "/usr/bin/cp", "/usr/bin/ls"} {
				if err := r.addHost(p, skip); err != nil {
					return err
				}
			}
			if err := r.addPythonPackages(skip, "python3-barman", "python3-argcomplete", "python3-dateutil", "python3-psycopg2", "python3-six"); err != nil {
				return err
			}
			r.addSymlink("usr/bin/python3", "python3.11")
			r.addFile("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nbarman:x:106:109:Barman:/var/lib/barman:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"))
			r.addFile("etc/group", []byte("root:x:0:\nbarman:x:109:\nnogroup:x:65534:\n"))
			r.addExecutable("usr/local/bin/barman-entrypoint", barmanEntrypoint)
			r.addExecutable(backup.ExporterPath, backup.ExporterScript)
			r.addDir("var/lib/barman", 0o700, 106, 109)
			r.addDir("var/log/barman", 0o755, 106, 109)
			r.addDir("etc/barman.d", 0o755, 0, 0)
			return r.addBytecode("/usr/bin/python3.11")
		},
		cfg: config{
			Entrypoint: []string{"/usr/local/bin/barman-entrypoint"},
			Env:        []string{basePath + ":/usr/lib/postgresql/15/bin", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"},
			WorkingDir: "/var/lib/barman",
		},
	}
}

// addExecutable adds a file with mode 0755 (a script).
func (r *rootfs) addExecutable(p string, content []byte) {
	r.files[clean(p)] = &entry{typ: tar.TypeReg, content: content, mode: 0o755}
}
