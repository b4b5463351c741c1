package stacks

import (
	"strings"
	"testing"
)

func names(d *Desired) string {
	var out []string
	for _, s := range d.Services {
		x := s.Name + "<" + strings.Join(s.DependsOn, ",") + ">"
		if len(s.RollsAfter) > 0 {
			x += "(" + strings.Join(s.RollsAfter, ",") + ")"
		}
		out = append(out, x)
	}
	return strings.Join(out, " ")
}

func TestOrderServices(t *testing.T) {
	d := &Desired{Services: []Service{
		{Name: "api", DependsOn: []string{"db", "cache"}},
		{Name: "worker", DependsOn: []string{"api", "elsewhere_db"}},
		{Name: "cache"},
		{Name: "db"},
		{Name: "kong", DependsOn: []string{"worker"}, RollsAfter: []string{"worker", "elsewhere_api"}},
		{Name: "exporter"},
	}}
	if err := orderServices(d); err != nil {
		t.Fatal(err)
	}
	// Dependencies (depends-on and rolls-after) first, otherwise the given order;
	// dependencies the site does not define are dropped.
	if got := d.Services[4].After(); len(got) != 1 || got[0] != "worker" {
		t.Errorf("kong is ordered after %v, want [worker] once", got)
	}
	if got, want := names(d), "db<> cache<> api<db,cache> worker<api> kong<worker>(worker) exporter<>"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}

	cyc := &Desired{Services: []Service{
		{Name: "a", DependsOn: []string{"b"}},
		{Name: "b", DependsOn: []string{"c"}},
		{Name: "c", RollsAfter: []string{"a"}},
	}}
	err := orderServices(cyc)
	if err == nil || !strings.Contains(err.Error(), "a → b → c → a") {
		t.Fatalf("err = %v, want the cycle a → b → c → a", err)
	}
}
