package images

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRootfsFollowsSymlinksAndLibraries(t *testing.T) {
	dir := t.TempDir()
	// host: <dir>/real/bin/tool, <dir>/bin -> real/bin (like merged /usr)
	if err := os.MkdirAll(filepath.Join(dir, "real", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real", "bin", "tool"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real/bin", filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	r := newRootfs()
	if err := r.addHost(filepath.Join(dir, "bin", "tool"), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.addHost("/bin/sh", nil); err != nil { // an ELF file: needs libc
		t.Fatal(err)
	}
	if err := r.addLibraries(); err != nil {
		t.Fatal(err)
	}
	// A file added below a symlinked dir moves to where the link points.
	r.addFile("bin/extra", []byte("x"))
	var buf bytes.Buffer
	if err := r.writeTar(&buf); err != nil {
		t.Fatal(err)
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[strings.TrimSuffix(h.Name, "/")] = h
	}
	rel := strings.TrimPrefix(dir, "/")
	if h := entries[rel+"/bin"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "real/bin" {
		t.Errorf("%s/bin is not kept as a symlink: %+v", rel, h)
	}
	if h := entries[rel+"/real/bin/tool"]; h == nil || h.Typeflag != tar.TypeReg {
		t.Errorf("the link's target file is missing")
	}
	libc := false
	for name := range entries {
		if strings.Contains(name, "libc.so") {
			libc = true
		}
		if strings.HasPrefix(name, "bin/") {
			if h := entries["bin"]; h != nil && h.Typeflag == tar.TypeSymlink {
				t.Errorf("%s is below the symlink bin", name)
			}
		}
	}
	if !libc {
		t.Error("/bin/sh's libc was not added")
	}
	if entries["usr/bin/extra"] == nil && entries["bin/extra"] == nil {
		t.Error("bin/extra is lost")
	}
}

func TestMissingPackagesSayHowToInstall(t *testing.T) {
	_, err := dpkgVersions("dash", "sitectl-no-such-package-lb")
	if err == nil {
		t.Fatal("no error for a package that is not installed")
	}
	for _, want := range []string{"sitectl-no-such-package-lb", "apt-get install sitectl-no-such-package-lb"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestCatalogMarksStandins(t *testing.T) {
	isReal := map[string]bool{}
	for _, s := range Catalog() {
		isReal[s.Logical] = s.Real
		if !strings.HasPrefix(s.Ref, Repo) {
			t.Errorf("%s: ref %s is outside %s", s.Logical, s.Ref, Repo)
		}
	}
	for _, r := range []string{"postgres", "prometheus", "django-api", "strongswan"} {
		if !isReal[r] {
			t.Errorf("%s should be a real image", r)
		}
	}
	for _, s := range []string{"kong", "elasticsearch", "logstash", "kibana", "grafana", "mongo"} {
		if v, ok := isReal[s]; !ok || v {
			t.Errorf("%s should be a stand-in", s)
		}
		if len(standinPorts[s]) == 0 {
			t.Errorf("stand-in %s exposes no port", s)
		}
	}
}

// TestBytecodeIsHashChecked: every Python source gets a hash-checked pyc beside it
// (the image's fixed mtimes would invalidate a timestamp pyc), and a source that does
// not compile is left to Python.
func TestBytecodeIsHashChecked(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on this machine")
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "pkg", "good.py"), filepath.Join(dir, "pkg", "bad.py")
	if err := os.MkdirAll(filepath.Dir(good), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("X = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("print 'python 2'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRootfs()
	if err := r.addHost(filepath.Join(dir, "pkg"), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.addBytecode(python); err != nil {
		t.Fatal(err)
	}
	var pycs []string
	for name, e := range r.files {
		if strings.HasSuffix(name, ".pyc") {
			pycs = append(pycs, name)
			// PEP 552 header: magic (4 bytes), flags (4 bytes little endian): 0b11 = checked hash.
			if len(e.content) < 16 || e.content[4] != 3 {
				t.Errorf("%s: flags %v, want a checked-hash pyc", name, e.content[4:8])
			}
		}
	}
	if len(pycs) != 1 || !strings.HasPrefix(pycs[0], clean(filepath.Join(dir, "pkg", "__pycache__", "good.cpython-"))) {
		t.Fatalf("pyc files = %v, want one, for good.py", pycs)
	}
}
