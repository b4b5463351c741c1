package targets_test

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

func site() *sites.Site {
	return &sites.Site{Name: "douala", Nodes: []sites.Node{
		{Name: "app1", Role: "manager", Address: "10.10.0.11", Labels: map[string]string{"role": "app"}},
		{Name: "db1", Role: "worker", Address: "10.10.0.12", Labels: map[string]string{"role": "db"}},
		{Name: "app2", Role: "worker", Address: "10.10.0.13", Labels: map[string]string{"role": "app"}},
	}}
}

func names(ns []sites.Node) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return strings.Join(out, ",")
}

func TestMatching(t *testing.T) {
	for _, tc := range []struct {
		constraints []string
		want, err   string
	}{
		{nil, "app1,db1,app2", ""},
		{[]string{"node.labels.role != db"}, "app1,app2", ""},
		{[]string{"node.labels.role == app", "node.role == worker"}, "app2", ""},
		{[]string{"node.hostname == db1"}, "db1", ""},
		{[]string{"node.labels.role == gpu"}, "", "no node satisfies"},
		{[]string{"node.platform.os == linux"}, "", "resolves only"},
		{[]string{"role app"}, "", "FIELD == VALUE"},
	} {
		got, err := targets.Matching(site(), tc.constraints)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want %q", tc.constraints, err, tc.err)
			}
			continue
		}
		if err != nil || names(got) != tc.want {
			t.Errorf("%v: %s, %v; want %s", tc.constraints, names(got), err, tc.want)
		}
	}
}

func TestPin(t *testing.T) {
	s := site()
	if n := targets.Pin(s, "app", "10.10.0.12"); n.Name != "db1" {
		t.Errorf("by address: %s", n.Name)
	}
	if n := targets.Pin(s, "db", ""); n.Name != "db1" {
		t.Errorf("by role label: %s", n.Name)
	}
	if n := targets.Pin(s, "monitor", ""); n.Name != "app1" {
		t.Errorf("fallback to the first manager: %s", n.Name)
	}
}

func TestValues(t *testing.T) {
	s := site()
	s.Values = map[string]map[string]any{"kong": {
		"http_port": "8080", "canary": map[string]any{"weight": 25.0, "enabled": "true"},
		"constraints": []any{"node.labels.role == app"}, "bad": map[string]any{"n": "x"},
	}}
	v := targets.ValuesOf(nil, s, "kong")
	if got := v.Int("http_port", 80); got != 8080 {
		t.Errorf("string port: %d", got)
	}
	if got := v.Int("https_port", 443); got != 443 {
		t.Errorf("default: %d", got)
	}
	if got := v.Int("canary.weight", 10); got != 25 {
		t.Errorf("nested: %d", got)
	}
	if !v.Bool("canary.enabled", false) {
		t.Error("nested bool")
	}
	if got := v.String("canary.service", "svc"); got != "svc" {
		t.Errorf("nested default beside a set key: %s", got)
	}
	if got := v.Strings("constraints", nil); len(got) != 1 {
		t.Errorf("list: %v", got)
	}
	// bad.n was set but no getter asked for it: it names no setting.
	if err := v.Err(); err == nil || !strings.Contains(err.Error(), "values.kong.bad.n names no setting of stack kong") {
		t.Fatalf("unread key: error %v, want it named as no setting", err)
	}
	v.Int("bad.n", 1)
	if err := v.Err(); err == nil || !strings.Contains(err.Error(), "values.kong.bad.n") {
		t.Errorf("bad value error %v, want the key named", err)
	}
}
