package pgdrill

import (
	"testing"

	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// TestTopologyFlowsAtNamesAsReplicationDoes: the observer's names of every flow's
// subscription, slot and publication are the ones replication/postgres creates
// (BuildAt) at the same generations: before any rebuild, after douala's, and after
// the hub's and douala's.
func TestTopologyFlowsAtNamesAsReplicationDoes(t *testing.T) {
	topo, err := sites.Load(sites.Options{Dir: "../../sites", Env: "dev", Environ: []string{"SITECTL_PG_PASSWORD=x"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, gens := range []map[string]int64{nil, {"douala": 1}, {"cloud": 2, "douala": 1}} {
		d, err := postgres.BuildAt(topo, gens)
		if err != nil {
			t.Fatal(err)
		}
		flows := TopologyFlowsAt(topo, gens)
		if len(flows) != len(topo.Flows) || len(flows) == 0 {
			t.Fatalf("gens %v: %d flows named, topology has %d", gens, len(flows), len(topo.Flows))
		}
		for _, f := range flows {
			var sub *postgres.Subscription
			for i, s := range d.Subscriptions[f.To] {
				if s.Flow.From == f.From {
					sub = &d.Subscriptions[f.To][i]
				}
			}
			if sub == nil {
				t.Fatalf("gens %v: replication has no subscription %s → %s", gens, f.From, f.To)
			}
			if f.Subscription != sub.Name || f.Slot != sub.Name || f.Publication != sub.Publication {
				t.Errorf("gens %v: %s → %s named subscription %q slot %q publication %q; replication names them %q, %q, %q",
					gens, f.From, f.To, f.Subscription, f.Slot, f.Publication, sub.Name, sub.Name, sub.Publication)
			}
		}
	}
	// The names the rebuild's docs and plan show.
	got := map[string]string{}
	for _, f := range TopologyFlowsAt(topo, map[string]int64{"douala": 1}) {
		got[f.From+">"+f.To] = f.Subscription
	}
	if got["cloud>douala"] != "sitectl_cloud_to_douala_g0_1" || got["douala>cloud"] != "sitectl_douala_to_cloud_g1_0" ||
		got["cloud>yaounde"] != "sitectl_cloud_to_yaounde" {
		t.Errorf("after douala's rebuild the flows are named %v", got)
	}
}
