package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/plan"
)

// FuzzReadPlan feeds arbitrary bytes to the saved-plan reader of `deploy --plan`:
// it may refuse them (naming the file) but never panics, and a plan it accepts (every
// site planned) is not stale against itself and survives being written and read again. The seeds run
// in every `go test`.
func FuzzReadPlan(f *testing.F) {
	for _, seed := range []string{
		`{"environment": "dev", "sites": [{"site": "douala", "steps": []}]}`,
		`{"environment": "dev", "prune": true, "sites": [{"site": "douala", "steps": [{"site": "douala", "component": "service", "action": "update", "name": "django-api_api", "diff": ["- replicas: 1", "+ replicas: 2"]}], "notes": ["n"]}]}`,
		`{"environment": "production", "sites": [{"site": "cloud", "steps": [], "error": "engine unreachable"}, {"site": "douala", "steps": null}]}`,
		`{"sites": [{"site": "douala", "nodes": []}]}`, `{"environment": "dev", "sites": []}`, `{}`, `[]`, `null`, ``, `{"environment": 5}`,
		`{"environment": "dev", "sites": [{"site": "a"}]} {"x": 1}`, `{"environment": "dev", "sites": [{"site": "a", "steps": [{"action": "\u0000"}]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePlan("saved.json", b)
		if err != nil {
			if !strings.Contains(err.Error(), "saved.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if p.Env == "" || len(p.Sites) == 0 {
			t.Fatalf("accepted a plan with no environment or no sites: %+v", p)
		}
		failed := false // a site that could not be planned never holds
		for _, sp := range p.Sites {
			failed = failed || sp.Error != ""
		}
		if diff := plan.Stale(p, p); len(diff) != 0 && !failed {
			t.Fatalf("a plan is stale against itself: %v", diff)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parsePlan("saved.json", again)
		if err != nil {
			t.Fatalf("a plan written again is refused: %v\n%s", err, again)
		}
		if diff := plan.Stale(p, q); len(diff) != 0 && !failed {
			t.Fatalf("a plan written and read again differs: %v", diff)
		}
	})
}
