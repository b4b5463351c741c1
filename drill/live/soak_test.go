package live

import (
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/drill/soak"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/traffic"
)

func soakTopo() *sites.Topology {
	all := []string{"postgres", "django-api", "kong"}
	return &sites.Topology{Hub: "cloud",
		Sites: []*sites.Site{
			{Name: "cloud", Stacks: all, Nodes: []sites.Node{{Name: "cloud-node1", Role: "manager"}}},
			{Name: "douala", Stacks: all, Nodes: []sites.Node{{Name: "douala-app1", Role: "manager"}, {Name: "douala-db1", Role: "worker"}}},
			{Name: "yaounde", Stacks: []string{"postgres"}, Nodes: []sites.Node{{Name: "yaounde-node1", Role: "manager"}}},
			{Name: "lagos", Stacks: all},
		},
		Links: []sites.Link{{A: "douala", B: "cloud"}, {A: "yaounde", B: "cloud"}},
		Flows: []sites.Flow{{From: "douala", To: "cloud", Filter: "site = 'douala'"}, {From: "cloud", To: "douala", Filter: "site <> 'douala'"},
			{From: "yaounde", To: "cloud", Filter: "site = 'yaounde'"}, {From: "cloud", To: "yaounde", Filter: "site <> 'yaounde'"}},
	}
}

// TestSoakTargets: spokes with a link, the hub, worker nodes only, the sites with
// each stack.
func TestSoakTargets(t *testing.T) {
	got := SoakTargets(soakTopo())
	want := soak.Targets{Spokes: []string{"douala", "yaounde"}, Hub: "cloud", Nodes: map[string][]string{"douala": {"douala-db1"}},
		DB: []string{"cloud", "douala", "yaounde", "lagos"}, API: []string{"cloud", "douala", "lagos"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("targets %+v, want %+v", got, want)
	}
	// The API as an app (design decision 30): the sites it is deployed at.
	topo := soakTopo()
	for _, s := range topo.Sites {
		s.Stacks = []string{"postgres", "kong"}
	}
	topo.Apps = []*sites.App{{Name: "django-api", Sites: map[string]sites.AppSite{"douala": {}, "yaounde": {}}}}
	if got := SoakTargets(topo).API; !reflect.DeepEqual(got, []string{"douala", "yaounde"}) {
		t.Errorf("API targets with the API as an app: %v, want douala, yaounde", got)
	}
}

// TestAPIPlacement: the API's table, not replicated, is expected at its owner
// only; listed in postgres.tables, wherever the owner's rows flow.
func TestAPIPlacement(t *testing.T) {
	topo := soakTopo()
	p := APIPlacement(topo)
	if !p("douala", "douala") || p("douala", "cloud") || p("douala", "yaounde") {
		t.Errorf("not replicated: a douala row expected at cloud or yaounde")
	}
	for _, s := range topo.Sites {
		s.Postgres.Tables = []string{"sitectl_drill", APITable}
	}
	p = APIPlacement(topo)
	if !p("douala", "cloud") || !p("douala", "yaounde") || !p("cloud", "douala") {
		t.Errorf("replicated: a row should reach every site through the flows")
	}
}

// TestAPIAttempts: each acknowledged write is an acknowledged attempt owned by
// the site that served it; an id that is no UUID says so.
func TestAPIAttempts(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	a := APIAttempts([]traffic.Write{{ID: id.String(), Owner: "cloud", Entry: "douala"}, {ID: "nope", Owner: "douala"}})
	if len(a) != 2 || a[0].Row.ID != id || a[0].At != "cloud" || a[0].Row.Site != "cloud" || !a[0].Acked || a[0].Err != "" {
		t.Errorf("attempt %+v", a[0])
	}
	if a[1].Err == "" {
		t.Errorf("id nope: %+v, want an error", a[1])
	}
}
