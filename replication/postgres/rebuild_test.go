package postgres

import (
	"bytes"
	"errors"
	"slices"
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
	if got := strings.Join(r.owners("site = 'douala'"), ","); got != "douala" {
		t.Errorf("owners of site = 'douala': %s", got)
	}
	if got := strings.Join(r.owners("site IN ('douala')"), ","); got != "cloud,douala,yaounde" {
		t.Errorf("owners of a filter of another form: %s, want every site", got)
	}
}

// TestFiltersDisjoint: only the topology's two forms, over the same or different
// sites, are read; anything else may overlap.
func TestFiltersDisjoint(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"site = 'douala'", "site <> 'douala'", true},
		{"site <> 'douala'", "site = 'douala'", true},
		{"site = 'douala'", "site = 'yaounde'", true},
		{"site = 'douala'", "site = 'douala'", false},
		{"site <> 'douala'", "site = 'yaounde'", false},
		{"site <> 'douala'", "site <> 'yaounde'", false},
		{"site = 'o''brien'", "site <> 'o''brien'", true},
		{"site = 'douala' OR true", "site <> 'douala'", false},
		{"site = douala", "site <> 'douala'", false},
		{"site IN ('douala')", "site <> 'douala'", false},
	} {
		if got := filtersDisjoint(c.a, c.b); got != c.want {
			t.Errorf("filtersDisjoint(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// TestRebuildOutFlowsSpokeAndHub: a spoke's rebuild neither pauses its
// subscriptions (they bring only other sites' rows, its publication carries only
// its own) nor compares its own rows with the hub they were just copied from; the
// hub's still pauses and compares what each spoke may lack, except its own rows at
// the spoke they came from.
func TestRebuildOutFlowsSpokeAndHub(t *testing.T) {
	topo := exampleTopo(t)
	d, err := Build(topo)
	if err != nil {
		t.Fatal(err)
	}
	lives := map[string]*Live{}
	for _, s := range d.SiteNames() {
		lives[s] = &Live{Site: s}
	}
	for _, c := range []struct {
		site, from string
		want       []string
	}{
		{"douala", "cloud", []string{
			"douala publication sitectl_douala_to_cloud", "douala slot sitectl_douala_to_cloud",
			"cloud subscription sitectl_douala_to_cloud", "douala resume subscriptions"}},
		{"cloud", "douala", []string{
			"cloud pause subscriptions",
			"cloud publication sitectl_cloud_to_douala", "cloud slot sitectl_cloud_to_douala", "douala rows douala lacks", "douala subscription sitectl_cloud_to_douala",
			"cloud publication sitectl_cloud_to_yaounde", "cloud slot sitectl_cloud_to_yaounde", "yaounde rows yaounde lacks", "yaounde subscription sitectl_cloud_to_yaounde",
			"cloud resume subscriptions"}},
	} {
		r := &Rebuild{Site: c.site, OwnSource: c.from, d: d, topo: topo}
		r.planOutFlows(lives)
		var got []string
		for _, st := range r.Steps {
			got = append(got, st.Site+" "+st.Name)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("rebuild of %s, own rows from %s: steps\n  %s\nwant\n  %s", c.site, c.from, strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
		}
		for _, st := range r.Steps {
			diff := strings.Join(st.Diff, "; ")
			switch st.Name {
			case "rows douala lacks":
				if !strings.HasPrefix(diff, "rows of yaounde in cloud that douala lacks") {
					t.Errorf("rebuild of %s: %s compares %s; want only yaounde's rows (cloud's came from douala)", c.site, st.Name, diff)
				}
			case "rows yaounde lacks":
				if !strings.HasPrefix(diff, "rows of cloud, douala in cloud that yaounde lacks") {
					t.Errorf("rebuild of %s: %s compares %s; want cloud's and douala's rows", c.site, st.Name, diff)
				}
			case "subscription sitectl_douala_to_cloud":
				if c.site == "douala" && !strings.Contains(diff, "rows of douala: copied from cloud above, compared by the verification") {
					t.Errorf("rebuild of douala: %s does not say why douala's rows are not compared: %s", st.Name, diff)
				}
			}
		}
	}
	// restore --replace: rows of douala from the restored copy that cloud lacks
	// reach cloud by the catch-up copy (its own rows are compared too).
	r := &Rebuild{Site: "douala", OwnSource: "cloud", d: d, topo: topo, opts: RebuildOptions{Restored: &RestoredCopy{Label: "restored copy"}}}
	r.planOutFlows(lives)
	var got []string
	for _, st := range r.Steps {
		got = append(got, st.Site+" "+st.Name+": "+strings.Join(st.Diff, "; "))
	}
	if !slices.ContainsFunc(got, func(s string) bool {
		return strings.HasPrefix(s, "cloud rows cloud lacks: rows of douala in douala that cloud lacks")
	}) {
		t.Errorf("rebuild of douala with a restored copy: steps\n  %s\nwant douala's rows that cloud lacks copied to cloud", strings.Join(got, "\n  "))
	}
}

func TestRate(t *testing.T) {
	t.Parallel()
	if got := rate(1000, 4000, 5000, 2*time.Second); got != "1000 rows copied (4000 of 5000 here), 500 rows/s" {
		t.Errorf("rate: %s", got)
	}
}
