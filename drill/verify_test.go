package drill

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/replication/keys"
	"github.com/sitectl/sitectl/sites"
)

// hubAndSpoke are the flows the topology derives for douala, yaounde and a cloud hub.
var hubAndSpoke = []sites.Flow{
	{From: "douala", To: "cloud", Filter: "site = 'douala'"},
	{From: "cloud", To: "douala", Filter: "site <> 'douala'"},
	{From: "yaounde", To: "cloud", Filter: "site = 'yaounde'"},
	{From: "cloud", To: "yaounde", Filter: "site <> 'yaounde'"},
}

var allSites = []string{"cloud", "douala", "yaounde"}

func TestFlowPlacement(t *testing.T) {
	place := FlowPlacement(hubAndSpoke)
	for _, owner := range allSites {
		for _, at := range allSites {
			if !place(owner, at) {
				t.Errorf("a row owned by %s is not expected at %s", owner, at)
			}
		}
	}
	// Without the hub's republication, a spoke's rows stop at the hub.
	oneWay := FlowPlacement(hubAndSpoke[:1])
	if !oneWay("douala", "cloud") || oneWay("douala", "yaounde") || oneWay("cloud", "douala") {
		t.Error("placement over the single flow douala→cloud is wrong")
	}
	// A filter that excludes the owner stops its rows.
	if FlowPlacement([]sites.Flow{{From: "cloud", To: "douala", Filter: "site <> 'douala'"}})("douala", "douala") != true {
		t.Error("a row is always expected at its owner")
	}
}

// world writes n acknowledged rows per site and replicates them everywhere.
func world(t *testing.T, n int) ([]Attempt, map[string][]Row) {
	t.Helper()
	var attempts []Attempt
	holdings := map[string][]Row{}
	for _, s := range allSites {
		g, err := keys.NewGenerator(s)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			k, _ := g.New()
			r := Row{ID: k.ID, Site: s, Run: "r1", Seq: i}
			attempts = append(attempts, Attempt{Row: r, At: s, Acked: true})
			for _, at := range allSites {
				holdings[at] = append(holdings[at], r)
			}
		}
	}
	return attempts, holdings
}

var streaming = []FlowState{
	{From: "douala", To: "cloud", State: StateStreaming, Enabled: true},
	{From: "cloud", To: "douala", State: StateStreaming, Enabled: true},
}

func TestVerify(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState)
		want   func(v Verdict) string // "" when as expected
	}{
		{"clean", func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState) {
			return a, h, streaming
		}, func(v Verdict) string {
			if !v.Passed || v.Lost+v.Duplicated+v.Collisions+v.WrongSite+v.Unexpected != 0 || v.Acked != 30 {
				return "a clean world did not pass"
			}
			return ""
		}},
		{"row deleted behind the drill's back", func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState) {
			h["yaounde"] = h["yaounde"][1:] // the first douala... row, replicated copy
			return a, h, streaming
		}, func(v Verdict) string {
			if v.Passed || v.Lost != 1 || len(v.LostSample) != 1 || v.LostSample[0].At != "yaounde" {
				return "want lost = 1 at yaounde and a failed verdict"
			}
			return ""
		}},
		{"duplicate copy with another owner", func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState) {
			r := h["cloud"][0]
			r.Site = "yaounde" // a second copy of a cloud key under another owner
			h["cloud"] = append(h["cloud"], r)
			return a, h, streaming
		}, func(v Verdict) string {
			if v.Passed || v.Duplicated != 1 || v.WrongSite != 1 {
				return "want duplicated = 1, wrong site = 1"
			}
			return ""
		}},
		{"key minted twice", func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState) {
			a[len(a)-1].Row.ID = a[0].Row.ID
			return a, h, streaming
		}, func(v Verdict) string {
			if v.Passed || v.Collisions != 1 {
				return "want collisions = 1"
			}
			return ""
		}},
		{"row nobody wrote", func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState) {
			h["douala"] = append(h["douala"], Row{ID: uuid.Must(uuid.NewV7()), Site: "douala", Run: "r1"})
			return a, h, streaming
		}, func(v Verdict) string {
			if v.Passed || v.Unexpected != 1 {
				return "want unexpected = 1"
			}
			return ""
		}},
		{"unacknowledged writes are neither required nor forbidden", func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState) {
			a[0].Acked, a[1].Acked = false, false // a[0] present everywhere, a[1] nowhere
			id := a[1].Row.ID
			for s, rows := range h {
				var keep []Row
				for _, r := range rows {
					if r.ID != id {
						keep = append(keep, r)
					}
				}
				h[s] = keep
			}
			return a, h, streaming
		}, func(v Verdict) string {
			if !v.Passed || v.Unacked != 2 || v.UnackedPresent != 1 {
				return "want a pass with 2 unacknowledged, 1 present"
			}
			return ""
		}},
		{"subscription disabled by error", func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState) {
			after := append([]FlowState(nil), streaming...)
			after[1].Enabled, after[1].State, after[1].LastError = false, StateDisabled, "duplicate key"
			return a, h, after
		}, func(v Verdict) string {
			if v.Passed || v.SubscriptionErrors != 1 {
				return "want subscription errors = 1"
			}
			return ""
		}},
		{"apply timeouts during the cut, recovered", func(a []Attempt, h map[string][]Row) ([]Attempt, map[string][]Row, []FlowState) {
			after := append([]FlowState(nil), streaming...)
			after[0].ApplyErrors = 1
			return a, h, after
		}, func(v Verdict) string {
			if !v.Passed || !strings.Contains(v.Checks[5].Detail, "apply error") {
				return "want a pass that mentions the apply error"
			}
			return ""
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, h := world(t, 10)
			a, h, after := tc.mutate(a, h)
			v := Verify(VerifyInput{Attempts: a, Holdings: h, Place: FlowPlacement(hubAndSpoke), Before: streaming, After: after})
			if msg := tc.want(v); msg != "" {
				t.Fatalf("%s; got %+v", msg, v)
			}
			passed := true
			for _, c := range v.Checks {
				passed = passed && c.Passed
			}
			if passed != v.Passed {
				t.Fatalf("Passed=%t but checks say %t", v.Passed, passed)
			}
		})
	}
}

func TestSides(t *testing.T) {
	topo := &sites.Topology{Hub: "cloud", Sites: []*sites.Site{{Name: "cloud"}, {Name: "douala"}, {Name: "yaounde"}},
		Links: []sites.Link{{A: "douala", B: "cloud"}, {A: "yaounde", B: "cloud"}}}
	got := Sides(topo, topo.Links[:1])
	if len(got) != 2 || strings.Join(got[0], ",") != "cloud,yaounde" || strings.Join(got[1], ",") != "douala" {
		t.Fatalf("partition douala: sides %v", got)
	}
	if got := Sides(topo, topo.Links); len(got) != 3 {
		t.Fatalf("cloud loss, hub and spoke: sides %v, want 3 islands", got)
	}
	topo.Links = append(topo.Links, sites.Link{A: "douala", B: "yaounde", Direct: true})
	if got := Sides(topo, topo.Links[:2]); len(got) != 2 || strings.Join(got[1], ",") != "douala,yaounde" {
		t.Fatalf("cloud loss with a direct link: sides %v, want the spokes together", got)
	}
}
