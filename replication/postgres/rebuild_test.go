package postgres

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestFenceOf(t *testing.T) {
	t.Parallel()
	gen := func(site string, n int64, state string) Generation {
		return Generation{Site: site, Generation: n, State: state}
	}
	tests := []struct {
		name string
		gens map[string]map[string]Generation
		want string // "" no error, "fenced", "half"
		own  int64
		rec  int64
	}{
		{name: "never rebuilt", gens: map[string]map[string]Generation{"douala": {}, "cloud": {}}},
		{name: "rebuilt and current", gens: map[string]map[string]Generation{
			"douala": {"douala": gen("douala", 2, GenActive)}, "cloud": {"douala": gen("douala", 2, GenActive)}}},
		{name: "old instance without a generation", want: "fenced", own: 0, rec: 1, gens: map[string]map[string]Generation{
			"douala": {}, "cloud": {"douala": gen("douala", 1, GenActive)}, "yaounde": {"douala": gen("douala", 1, GenActive)}}},
		{name: "old instance of an older generation", want: "fenced", own: 1, rec: 3, gens: map[string]map[string]Generation{
			"douala": {"douala": gen("douala", 1, GenActive)}, "cloud": {"douala": gen("douala", 3, GenActive)}, "yaounde": {"douala": gen("douala", 2, GenActive)}}},
		{name: "half rebuilt", want: "half", gens: map[string]map[string]Generation{
			"douala": {"douala": gen("douala", 1, GenRebuilding)}, "cloud": {"douala": gen("douala", 1, GenRebuilding)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := fenceOf("douala", tc.gens)
			var f *FencedError
			var h *HalfRebuiltError
			switch tc.want {
			case "":
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
			case "fenced":
				if !errors.As(err, &f) || f.Own != tc.own || f.Recorded != tc.rec {
					t.Fatalf("want fenced %d < %d, got %v", tc.own, tc.rec, err)
				}
				for _, w := range []string{"generation", "site reconcile douala", "retire", "fenced"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not say %q: %v", w, err)
					}
				}
			case "half":
				if !errors.As(err, &h) || !strings.Contains(err.Error(), "sitectl site rebuild douala") {
					t.Fatalf("want half rebuilt, got %v", err)
				}
			}
		})
	}
}

// TestWatermark: keys minted before the watermark's moment sort below it, keys
// minted after sort above, as PostgreSQL compares uuids (bytewise).
func TestWatermark(t *testing.T) {
	t.Parallel()
	before := uuid.Must(uuid.NewV7())
	time.Sleep(2 * time.Millisecond)
	w := watermark(time.Now())
	time.Sleep(2 * time.Millisecond)
	after := uuid.Must(uuid.NewV7())
	if bytes.Compare(before[:], w[:]) >= 0 {
		t.Errorf("a key minted before %s does not sort below it: %s", w, before)
	}
	if bytes.Compare(after[:], w[:]) <= 0 {
		t.Errorf("a key minted after %s does not sort above it: %s", w, after)
	}
}

func TestOwnersSkipTheSubscribersOwnRows(t *testing.T) {
	t.Parallel()
	r := &Rebuild{d: &Desired{Publications: map[string][]Publication{"cloud": nil, "douala": nil, "yaounde": nil}}}
	if got := strings.Join(r.owners("site <> 'douala'"), ","); got != "cloud,yaounde" {
		t.Errorf("owners of site <> 'douala': %s", got)
	}
	if got := strings.Join(r.owners("site = 'douala'"), ","); got != "cloud,douala,yaounde" {
		t.Errorf("owners of site = 'douala': %s", got)
	}
}

func TestRate(t *testing.T) {
	t.Parallel()
	if got := rate(1000, 4000, 5000, 2*time.Second); got != "1000 rows copied (4000 of 5000 here), 500 rows/s" {
		t.Errorf("rate: %s", got)
	}
}
