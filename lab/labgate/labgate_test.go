package labgate

import (
	"strings"
	"testing"
)

func TestReason(t *testing.T) {
	tests := []struct {
		short bool
		euid  int
		want  string // substring; "" means the test runs
	}{
		{true, 0, "skipped under -short"},
		{true, 1000, "skipped under -short"},
		{false, 1000, "needs root"},
		{false, 0, ""},
	}
	for _, tt := range tests {
		got := reason(tt.short, tt.euid)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("reason(short=%v, euid=%d) = %q, want %q", tt.short, tt.euid, got, tt.want)
		}
	}
}

// TestSkipUnderShort: under -short (how `make unit` runs) Skip skips.
func TestSkipUnderShort(t *testing.T) {
	if !testing.Short() {
		t.Skip("checks the -short path")
	}
	ran := false
	t.Run("gated", func(t *testing.T) {
		Skip(t)
		ran = true
	})
	if ran {
		t.Fatal("Skip did not skip under -short")
	}
}
