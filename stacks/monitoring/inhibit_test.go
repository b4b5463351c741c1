package monitoring

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestInhibitMatchesRebuiltFlows: a spoke's TunnelDown inhibits the replication
// alerts of its flows both ways, generation-named ones (after a rebuild) too, and
// not the other spoke's.
func TestInhibitMatchesRebuiltFlows(t *testing.T) {
	topo := stacktest.Load(t, "lab")
	out, err := AlertmanagerConfig(topo)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		InhibitRules []amInhibit `yaml:"inhibit_rules"`
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var re *regexp.Regexp
	for _, r := range cfg.InhibitRules {
		if !slices.Contains(r.SourceMatchers, `site="douala"`) {
			continue
		}
		for _, m := range r.TargetMatchers {
			if v, ok := strings.CutPrefix(m, "subname=~"); ok {
				re = regexp.MustCompile("^(?:" + strings.Trim(v, `"`) + ")$")
			}
		}
	}
	if re == nil {
		t.Fatalf("no subname inhibit rule for douala in:\n%s", out)
	}
	for name, want := range map[string]bool{
		"sitectl_douala_to_cloud": true, "sitectl_cloud_to_douala": true,
		"sitectl_douala_to_cloud_g1_0": true, "sitectl_cloud_to_douala_g0_1": true, "sitectl_cloud_to_douala_g2_3": true,
		"sitectl_cloud_to_yaounde": false, "sitectl_cloud_to_yaounde_g0_1": false, "sitectl_cloud_to_douala_gx": false,
	} {
		if got := re.MatchString(name); got != want {
			t.Errorf("douala's inhibit rule matches %s: %v, want %v", name, got, want)
		}
	}
}
