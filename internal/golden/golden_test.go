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
	t.Cleanup(func() { _ = os.Chdir(wd) })
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "x.golden"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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

func TestFirstDiff(t *testing.T) {
	tests := []struct{ want, got, out string }{
		{"a\nb\nc\n", "a\nB\nc\n", "first difference at line 2:\n  want: b\n  got:  B"},
		{"a\n", "a\nextra\n", "first difference at line 2:\n  want: \n  got:  extra"},
		{"a\r\n", "a\n", "first difference at line 1:\n  want: a\r\n  got:  a"},
		{"same", "same", "same lines, different bytes"},
	}
	for _, tt := range tests {
		if got := FirstDiff(tt.want, tt.got); got != tt.out {
			t.Errorf("FirstDiff(%q, %q) = %q, want %q", tt.want, tt.got, got, tt.out)
		}
	}
}
