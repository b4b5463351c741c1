package golden

import (
	"os"
	"path/filepath"
	"testing"
)

type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}

func TestAssert(t *testing.T) {
	if Updating() {
		t.Skip("under -update Assert rewrites instead of comparing")
	}
	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll("testdata", 0o755)
	os.WriteFile(filepath.Join("testdata", "x.golden"), []byte("hello\n"), 0o644)
	r := &recorder{TB: t}
	Assert(r, "x.golden", []byte("hello\n"))
	if r.failed {
		t.Fatal("equal content reported as different")
	}
	Assert(r, "x.golden", []byte("bye\n"))
	if !r.failed {
		t.Fatal("different content not reported")
	}
}
