package text

import "testing"

func TestOrDash(t *testing.T) {
	for in, want := range map[string]string{"": "-", "x": "x", " ": " "} {
		if got := OrDash(in); got != want {
			t.Errorf("OrDash(%q) = %q, want %q", in, got, want)
		}
	}
}
