package images

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testStandin builds the stand-in binary the recipes embed.
func testStandin(t *testing.T) string {
	t.Helper()
	b := &Builder{CacheDir: t.TempDir(), SourceDirs: []string{"."}}
	standin, _, err := b.standinBinary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return standin
}

// unpackRecipe builds rc's root filesystem and unpacks it into a fresh directory,
// returned, for a test to run its programs in (chroot). Missing host packages skip
// the test unless required, when they fail it.
func unpackRecipe(t *testing.T, rc recipe, standin string, required bool) string {
	t.Helper()
	if _, err := rc.key("x"); err != nil {
		var mp *MissingPackagesError
		if errors.As(err, &mp) && !required {
			t.Skipf("%v (hack/install-deps.sh installs them)", err)
		}
		if errors.As(err, &mp) {
			t.Fatalf("%v (hack/install-deps.sh installs them)", err)
		}
		t.Fatal(err)
	}
	r := newRootfs()
	if err := rc.build(r, standin); err != nil {
		t.Fatal(err)
	}
	if err := r.addLibraries(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.writeTar(&buf); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	untar := exec.Command("tar", "-x", "-C", root)
	untar.Stdin = &buf
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpack: %v\n%s", err, out)
	}
	return root
}
