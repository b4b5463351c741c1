package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// entry is one file of an image's root filesystem.
type entry struct {
	typ      byte   // tar.TypeReg, TypeDir, TypeSymlink
	src      string // host file to copy (regular files)
	content  []byte // generated content (regular files, when src is empty)
	target   string // symlink target
	mode     int64
	uid, gid int
}

// rootfs assembles a root filesystem from host files (following symlinks the way
// the host resolves them, so merged-/usr paths keep working) and generated files.
type rootfs struct {
	files map[string]*entry
	// libDirs are searched for the shared libraries ELF files need.
	libDirs []string
}

func newRootfs() *rootfs {
	return &rootfs{files: map[string]*entry{}, libDirs: []string{
		"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib", "/usr/lib/ipsec", "/usr/lib/ipsec/plugins",
	}}
}

// addDir adds an empty directory.
func (r *rootfs) addDir(p string, mode int64, uid, gid int) {
	r.files[clean(p)] = &entry{typ: tar.TypeDir, mode: mode, uid: uid, gid: gid}
}

// addFile adds a generated file (mode 0644).
func (r *rootfs) addFile(p string, content []byte) {
	r.files[clean(p)] = &entry{typ: tar.TypeReg, content: content, mode: 0o644}
}

// addHostFile copies a host file into the image at another path.
func (r *rootfs) addHostFileAs(src, dst string, mode int64) {
	r.files[clean(dst)] = &entry{typ: tar.TypeReg, src: src, mode: mode}
}

// addSymlink adds a symlink.
func (r *rootfs) addSymlink(p, target string) {
	r.files[clean(p)] = &entry{typ: tar.TypeSymlink, target: target, mode: 0o777}
}

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

// addHost adds a host path as the host resolves it: each symlink on the way is kept
// as a symlink and its target added too; directories are added recursively, minus
// what skip rejects.
func (r *rootfs) addHost(p string, skip func(string) bool) error {
	return r.addHostDepth(p, skip, 0)
}

func (r *rootfs) addHostDepth(p string, skip func(string) bool, depth int) error {
	if depth > 40 {
		return fmt.Errorf("%s: too many symlinks", p)
	}
	p = path.Clean(p)
	// Resolve symlinks in the parent components first.
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, part := range parts[:len(parts)-1] {
		next := path.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			t, err := os.Readlink(next)
			if err != nil {
				return err
			}
			r.addSymlink(next, t)
			resolved := t
			if !path.IsAbs(t) {
				resolved = path.Join(cur, t)
			}
			rest := path.Join(append([]string{resolved}, parts[i+1:]...)...)
			return r.addHostDepth(rest, skip, depth+1)
		}
		cur = next
	}
	if skip != nil && skip(p) {
		return nil
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			return err
		}
		r.addSymlink(p, t)
		resolved := t
		if !path.IsAbs(t) {
			resolved = path.Join(path.Dir(p), t)
		}
		if _, err := os.Stat(resolved); err != nil {
			return nil // a dangling link stays dangling
		}
		return r.addHostDepth(resolved, skip, depth+1)
	case fi.IsDir():
		if _, ok := r.files[clean(p)]; !ok {
			r.files[clean(p)] = &entry{typ: tar.TypeDir, mode: int64(fi.Mode().Perm())}
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := r.addHostDepth(path.Join(p, e.Name()), skip, depth); err != nil {
				return err
			}
		}
	case fi.Mode().IsRegular():
		r.files[clean(p)] = &entry{typ: tar.TypeReg, src: p, mode: int64(fi.Mode().Perm())}
	}
	return nil
}

// addLibraries adds the shared libraries every ELF file in the image needs,
// transitively (read from the ELF files' DT_NEEDED entries, like ldd without running
// anything), and the dynamic loader.
func (r *rootfs) addLibraries() error {
	done := map[string]bool{}
	for round := 0; round < 10; round++ {
		var need []string
		for p, e := range r.files {
			if e.typ != tar.TypeReg || e.src == "" || done[p] {
				continue
			}
			done[p] = true
			libs, interp, ok := elfNeeds(e.src)
			if !ok {
				continue
			}
			if interp != "" {
				need = append(need, interp)
			}
			for _, l := range libs {
				found := ""
				for _, d := range append(r.extraDirs(e.src), r.libDirs...) {
					if _, err := os.Stat(filepath.Join(d, l)); err == nil {
						found = filepath.Join(d, l)
						break
					}
				}
				if found == "" {
					return fmt.Errorf("%s needs %s, which is not on this machine", e.src, l)
				}
				need = append(need, found)
			}
		}
		if len(need) == 0 {
			return nil
		}
		for _, n := range need {
			if _, ok := r.files[clean(n)]; ok {
				continue
			}
			if err := r.addHost(n, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// extraDirs are library dirs next to a binary (PostgreSQL's and Python's own).
func (r *rootfs) extraDirs(src string) []string {
	return []string{filepath.Dir(src), filepath.Join(filepath.Dir(src), "..", "lib")}
}

// elfNeeds returns an ELF file's needed libraries and interpreter; ok is false for
// files that are not ELF.
func elfNeeds(p string) (libs []string, interp string, ok bool) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, "", false
	}
	defer func() { _ = f.Close() }()
	libs, _ = f.ImportedLibraries()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err == nil {
				interp = strings.TrimRight(string(b), "\x00")
			}
		}
	}
	return libs, interp, true
}

// epoch is every file's mtime, so the same inputs make the same layer bytes.
var epoch = time.Unix(1700000000, 0).UTC()

// writeTar writes the root filesystem as a layer tar (sorted, parents first, fixed
// times and owners).
func (r *rootfs) writeTar(w io.Writer) error {
	// Every parent directory exists.
	for p := range r.files {
		for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			if _, ok := r.files[d]; !ok {
				r.files[d] = &entry{typ: tar.TypeDir, mode: 0o755}
			}
		}
	}
	// An entry below a symlinked directory (bin/x with bin -> usr/bin) moves to
	// where the link points, or extraction fails.
	for p, e := range r.files {
		if q := r.resolveParents(p); q != p {
			delete(r.files, p)
			if _, ok := r.files[q]; !ok {
				r.files[q] = e
			}
		}
	}
	names := make([]string, 0, len(r.files))
	for p := range r.files {
		if p != "" && p != "." {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	for _, n := range names {
		e := r.files[n]
		h := &tar.Header{Name: n, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: epoch, Typeflag: e.typ, Format: tar.FormatPAX}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		case tar.TypeSymlink:
			h.Linkname = e.target
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		case tar.TypeReg:
			var src io.Reader
			if e.src != "" {
				f, err := os.Open(e.src)
				if err != nil {
					return err
				}
				fi, err := f.Stat()
				if err != nil {
					_ = f.Close()
					return err
				}
				h.Size = fi.Size()
				src = f
			} else {
				h.Size = int64(len(e.content))
				src = bytes.NewReader(e.content)
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := io.Copy(tw, src); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			if c, ok := src.(io.Closer); ok {
				_ = c.Close()
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// dpkgFiles lists the files of installed Debian packages, or says which are missing.
func dpkgFiles(pkgs ...string) ([]string, error) {
	var out []string
	var missing []string
	for _, p := range pkgs {
		b, err := exec.Command("dpkg-query", "-L", p).Output()
		if err != nil {
			missing = append(missing, p)
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && l != "/." {
				out = append(out, l)
			}
		}
	}
	if len(missing) > 0 {
		return nil, &MissingPackagesError{Packages: missing}
	}
	return out, nil
}

// dpkgVersions returns "pkg=version" lines of installed packages (a cache key input).
func dpkgVersions(pkgs ...string) (string, error) {
	var b strings.Builder
	var missing []string
	for _, p := range pkgs {
		v, err := exec.Command("dpkg-query", "-W", "-f=${Version}", p).Output()
		if err != nil || len(v) == 0 {
			missing = append(missing, p)
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", p, v)
	}
	if len(missing) > 0 {
		return "", &MissingPackagesError{Packages: missing}
	}
	return b.String(), nil
}

// MissingPackagesError names the Debian packages an image needs that are not
// installed.
type MissingPackagesError struct{ Packages []string }

func (e *MissingPackagesError) Error() string {
	return fmt.Sprintf("lab images need Debian packages that are not installed: %s; install them with `apt-get install %s` (or `make deps`)",
		strings.Join(e.Packages, ", "), strings.Join(e.Packages, " "))
}

// resolveParents rewrites p through symlinked parent directories of the image.
func (r *rootfs) resolveParents(p string) string {
	for i := 0; i < 10; i++ {
		parts := strings.Split(p, "/")
		moved := false
		for j := 1; j < len(parts); j++ {
			dir := strings.Join(parts[:j], "/")
			if e, ok := r.files[dir]; ok && e.typ == tar.TypeSymlink {
				t := e.target
				if !path.IsAbs(t) {
					t = path.Join(path.Dir("/"+dir), t)
				}
				p = clean(path.Join(append([]string{t}, parts[j:]...)...))
				moved = true
				break
			}
		}
		if !moved {
			return p
		}
	}
	return p
}

// pycompile compiles the (source, pyc) pairs on stdin, one tab-separated pair per
// line, with hash-checked invalidation: the image's files carry a fixed mtime, so a
// timestamp-checked pyc would never match its source. A file that does not compile
// (Python 2 leftovers) is skipped: Python compiles it at import, as without pyc.
const pycompile = `import sys, py_compile
for line in sys.stdin:
    src, pyc = line.rstrip("\n").split("\t")
    try:
        py_compile.compile(src, cfile=pyc, dfile=src, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    except Exception:
        pass
`

// addBytecode adds __pycache__/*.pyc for every Python source of the image, compiled
// by the host's python (the same interpreter the image copies). Without them every
// container start and every health check compiles the standard library and Django
// again: seconds of CPU per start, which the lab's two cores feel when three sites
// start at once.
func (r *rootfs) addBytecode(python string) error {
	ver, err := exec.Command(python, "-c", "import sys; print('cpython-%d%d' % sys.version_info[:2])").Output()
	if err != nil {
		return fmt.Errorf("python version: %w", err)
	}
	tag := strings.TrimSpace(string(ver))
	tmp, err := os.MkdirTemp("", "sitectl-pyc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var in bytes.Buffer
	want := map[string]string{} // image pyc path → compiled file
	names := make([]string, 0, len(r.files))
	for name := range r.files {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		e := r.files[name]
		if e.typ != tar.TypeReg || !strings.HasSuffix(name, ".py") {
			continue
		}
		src := e.src
		if src == "" {
			continue // generated: the app's own script, which runs as __main__ (never cached)
		}
		out := filepath.Join(tmp, fmt.Sprintf("%d.pyc", i))
		pyc := path.Join(path.Dir(name), "__pycache__", strings.TrimSuffix(path.Base(name), ".py")+"."+tag+".pyc")
		want[pyc] = out
		fmt.Fprintf(&in, "%s\t%s\n", src, out)
	}
	cmd := exec.Command(python, "-c", pycompile)
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("compile python bytecode: %w\n%s", err, out)
	}
	for pyc, out := range want {
		b, err := os.ReadFile(out)
		if err != nil {
			continue // did not compile
		}
		r.addFile(pyc, b)
	}
	return nil
}

// PGTemplateDir holds, in the lab PostgreSQL image, a cluster initdb made at image
// build time with PGTemplateUser as its bootstrap superuser (and no password). The
// entrypoint copies it instead of running initdb when POSTGRES_USER matches: initdb
// takes 1 s alone and 4+ s when three sites start at once on two cores, and a
// database not ready at the first health check (5 s) is not healthy until the next,
// which its dependants then wait for too. The lab only: production runs the
// official image, each site on its own machines.
const (
	PGTemplateDir  = "/usr/share/sitectl/pgdata-template"
	PGTemplateUser = "sitectl"
)

// addPGTemplate runs the host's initdb (the binaries the image copies) as the host's
// postgres user and adds the cluster at PGTemplateDir, owned by the image's
// postgres (999).
func (r *rootfs) addPGTemplate() error {
	pg, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("pg template: %w (postgresql-15 installs the user)", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	tmp, err := os.MkdirTemp("", "sitectl-pgtemplate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chown(tmp, uid, gid); err != nil {
		return err
	}
	data := filepath.Join(tmp, "data")
	cmd := exec.Command("/usr/lib/postgresql/15/bin/initdb", "-D", data, "-U", PGTemplateUser, "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg template: initdb: %w\n%s", err, out)
	}
	dst := clean(PGTemplateDir)
	r.addDir(path.Dir(dst), 0o755, 0, 0)
	return filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		name := path.Join(dst, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			r.addDir(name, int64(fi.Mode().Perm()), 999, 999)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			r.files[clean(name)] = &entry{typ: tar.TypeReg, content: b, mode: int64(fi.Mode().Perm()), uid: 999, gid: 999}
		}
		return nil
	})
}
