package postgres

import (
	"strings"
	"testing"
)

// TestCompareSums: the verification's comparison per table and owner. Equal sums
// (an owner absent at every site included) pass; one site differing is named with
// every site's sum; an owner absent at one site only differs.
func TestCompareSums(t *testing.T) {
	d, err := Build(exampleTopo(t))
	if err != nil {
		t.Fatal(err)
	}
	table := d.Tables[0]
	same := func() map[string]siteSums {
		out := map[string]siteSums{}
		for _, s := range d.SiteNames() {
			out[s] = siteSums{table: {"douala": {Rows: 3, Checksum: "42"}}}
		}
		return out
	}
	v, bad := compareSums(d, same())
	if len(bad) != 0 || len(v) != len(d.Tables)*len(d.SiteNames()) {
		t.Fatalf("equal sums: %d verified, bad %q", len(v), bad)
	}
	for _, x := range v {
		if !x.Equal {
			t.Errorf("%s: not equal", x)
		}
	}
	diff := same()
	diff["yaounde"][table]["douala"] = Sum{Rows: 3, Checksum: "41"}
	if _, bad := compareSums(d, diff); len(bad) != 1 || !strings.Contains(bad[0], "yaounde 3 rows, checksum 41") || !strings.Contains(bad[0], "cloud 3 rows, checksum 42") {
		t.Errorf("one checksum differing: bad %q", bad)
	}
	missing := same()
	delete(missing["cloud"][table], "douala")
	if _, bad := compareSums(d, missing); len(bad) != 1 || !strings.Contains(bad[0], "cloud 0 rows, checksum 0") {
		t.Errorf("rows absent at one site: bad %q", bad)
	}
}
