package live

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/sites"
)

// TestTouchedSites: where a drill records its faults (and looks for another
// drill's record before it starts).
func TestTouchedSites(t *testing.T) {
	topo := &sites.Topology{Hub: "cloud", Sites: []*sites.Site{{Name: "cloud"}, {Name: "douala"}, {Name: "yaounde"}},
		Links: []sites.Link{{A: "douala", B: "cloud"}, {A: "yaounde", B: "cloud"}}}
	for _, tc := range []struct{ kind, site, want string }{
		{"partition", "douala", "cloud douala"},
		{"cloud-loss", "", "cloud douala yaounde"},
		{"db-down", "yaounde", "yaounde"},
		{"node-loss", "douala", "douala"},
		{"partition", "lagos", "cloud douala yaounde"},
	} {
		if got := strings.Join(TouchedSites(topo, tc.kind, tc.site), " "); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.kind, tc.site, got, tc.want)
		}
	}
	topo.Links = append(topo.Links, sites.Link{A: "douala", B: "yaounde", Direct: true})
	if got := strings.Join(TouchedSites(topo, "partition", "douala"), " "); got != "cloud douala yaounde" {
		t.Errorf("partition of douala with a direct link: %q", got)
	}
}
