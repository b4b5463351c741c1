package mongo

import (
	"bytes"
	"slices"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
)

func twoTwoOne(topo *sites.Topology) {
	topo.Site("douala").Mongo.Members = append(topo.Site("douala").Mongo.Members, sites.MongoMember{Host: "10.10.0.13:27017", Priority: priority(1)})
	topo.Site("yaounde").Mongo.Members = append(topo.Site("yaounde").Mongo.Members, sites.MongoMember{Host: "10.20.0.12:27017", Priority: priority(1)})
}

func TestAnalyze(t *testing.T) {
	t.Parallel()
	type want struct {
		scenario string
		primary  string   // "" none
		cands    []string // tie
		writable []string
		readOnly []string
	}
	cases := []struct {
		name   string
		mutate func(*sites.Topology)
		checks []want
	}{
		{"hub-and-spoke-111", nil, []want{
			{"all links up", "cloud", nil, []string{"cloud", "douala", "yaounde"}, []string{}},
			{"link douala-cloud cut", "cloud", nil, []string{"cloud", "yaounde"}, []string{"douala"}},
			{"cloud lost", "", nil, []string{}, []string{"douala", "yaounde"}},
		}},
		{"direct-111", directLink, []want{
			{"link douala-yaounde cut", "cloud", nil, []string{"cloud", "douala", "yaounde"}, []string{}},
			// yaounde reaches douala over the direct link, but the cloud only through
			// its own (cut) tunnel: no transit through a spoke.
			{"link yaounde-cloud cut", "cloud", nil, []string{"cloud", "douala"}, []string{"yaounde"}},
			{"cloud lost", "", []string{"douala", "yaounde"}, []string{"douala", "yaounde"}, []string{}},
		}},
		{"hub-and-spoke-221", twoTwoOne, []want{
			{"link douala-cloud cut", "cloud", nil, []string{"cloud", "yaounde"}, []string{"douala"}},
			{"cloud lost", "", nil, []string{}, []string{"douala", "yaounde"}},
		}},
		{"direct-221", func(tp *sites.Topology) { twoTwoOne(tp); directLink(tp) }, []want{
			{"cloud lost", "", []string{"douala", "yaounde"}, []string{"douala", "yaounde"}, []string{}},
		}},
		{"arbiter-at-yaounde", func(tp *sites.Topology) {
			y := tp.Site("yaounde")
			y.Mongo.AllowArbiter = true
			y.Mongo.Members[0].Arbiter = true
			y.Mongo.Members[0].Priority = nil
		}, []want{
			{"all links up", "cloud", nil, []string{"cloud", "douala", "yaounde"}, []string{}},
			// cloud+yaounde elect (2 of 3 votes) but only cloud holds data: 1 < 2.
			{"link douala-cloud cut", "cloud", nil, []string{}, []string{"cloud", "douala", "yaounde"}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			topo := loadTopo(t, tc.mutate)
			a, err := Analyze(topo)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.checks {
				i := slices.IndexFunc(a.Scenarios, func(s Scenario) bool { return s.Name == w.scenario })
				if i < 0 {
					t.Fatalf("no scenario %q", w.scenario)
				}
				sc := a.Scenarios[i]
				if sc.Primary != w.primary || !slices.Equal(sc.Candidates, w.cands) {
					t.Errorf("%s: primary %q candidates %v, want %q %v", w.scenario, sc.Primary, sc.Candidates, w.primary, w.cands)
				}
				if !slices.Equal(sc.Writable, w.writable) || !slices.Equal(sc.ReadOnly, w.readOnly) {
					t.Errorf("%s: writable %v read-only %v, want %v %v", w.scenario, sc.Writable, sc.ReadOnly, w.writable, w.readOnly)
				}
			}
			var buf bytes.Buffer
			if err := a.Render(&buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(buf.Bytes(), []byte("does not promote itself")) || !bytes.Contains(buf.Bytes(), []byte("rolled back")) {
				t.Errorf("output does not state the no-self-promotion and rollback facts:\n%s", buf.String())
			}
			golden.Assert(t, "analyze-"+tc.name+".golden", buf.Bytes())
		})
	}
}

func TestPlanNotesNameReadOnlySites(t *testing.T) {
	t.Parallel()
	a, err := Analyze(loadTopo(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	notes := a.PlanNotes()
	want := "mongo: cloud lost: no primary; read-only: douala, yaounde"
	if !slices.Contains(notes, want) {
		t.Errorf("plan notes %q lack %q", notes, want)
	}
	if !slices.Contains(notes, NoSelfPromotion) {
		t.Errorf("plan notes lack the no-self-promotion statement")
	}
}
