package main

import (
	"reflect"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		allowed map[string]string
		want    []string
	}{
		{
			name: "every offender",
			want: []string{
				"bad/bad.go:1: file has 654 lines (limit 500)",
				"bad/bad.go:4: func Long has 124 lines (limit 100)",
				"bad/bad.go:531: func Table has 124 lines (limit 100)",
				"ok/ok.go:6: func func literal at line 6 has 124 lines (limit 100)",
			},
		},
		{
			name: "allowlist entries that excuse nothing",
			allowed: map[string]string{
				"ok/ok.go":        "test: a short file",
				"ok/edge.go:Edge": "test: at the limit, not over it",
			},
			want: []string{
				"bad/bad.go:1: file has 654 lines (limit 500)",
				"bad/bad.go:4: func Long has 124 lines (limit 100)",
				"bad/bad.go:531: func Table has 124 lines (limit 100)",
				"ok/ok.go:6: func func literal at line 6 has 124 lines (limit 100)",
				`hack/shape/main.go: allow entry "ok/edge.go:Edge" is within the limits now (or names nothing); remove it`,
				`hack/shape/main.go: allow entry "ok/ok.go" is within the limits now (or names nothing); remove it`,
			},
		},
		{
			name: "allowlisted file and function",
			allowed: map[string]string{
				"bad/bad.go":       "test: a data file",
				"bad/bad.go:Table": "test: a data table",
			},
			want: []string{
				"bad/bad.go:4: func Long has 124 lines (limit 100)",
				"ok/ok.go:6: func func literal at line 6 has 124 lines (limit 100)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := check("testdata/tree", tt.allowed)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, o := range got {
				lines = append(lines, o.String())
			}
			if !reflect.DeepEqual(lines, tt.want) {
				t.Errorf("check() =\n%q\nwant\n%q", lines, tt.want)
			}
		})
	}
}

func TestFuncName(t *testing.T) {
	// Methods are named Type.Method whatever the receiver's form.
	got, err := check("testdata/methods", nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range got {
		names = append(names, o.What)
	}
	want := []string{"T.Value", "T.Pointer", "G.Generic"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
}
