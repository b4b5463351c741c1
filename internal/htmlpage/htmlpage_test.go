package htmlpage

import (
	"slices"
	"strings"
	"testing"
)

func TestExternalRefs(t *testing.T) {
	for page, want := range map[string]int{
		`<html><body><svg xmlns="http://www.w3.org/2000/svg"><text>http://not-a-ref</text></svg></body></html>`: 0,
		`<link rel="stylesheet" href="https://cdn.example/x.css">`:                                              1,
		`<script src="//cdn.example/x.js"></script>`:                                                            1,
		`<img src="http://example.com/a.png"><a href="#top">top</a>`:                                            1,
		`<style>body { background: url(x.png); }</style>`:                                                       1,
		`<style>@import "x.css";</style><div style="background:url(y.png)"></div>`:                              2,
		`<svg><image href="https://example.com/i.png"/></svg>`:                                                  1,
	} {
		got, err := ExternalRefs(strings.NewReader(page))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("%s: %d external reference(s) %q, want %d", page, len(got), got, want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	ticks := TimeTicks(14)
	var labels []string
	for _, tk := range ticks {
		labels = append(labels, tk.Label)
	}
	if want := []string{"0s", "2s", "4s", "6s", "8s", "10s", "12s", "14s"}; !slices.Equal(labels, want) {
		t.Errorf("ticks %v, want %v", labels, want)
	}
	if ticks[0].X != PlotLeft || ticks[len(ticks)-1].X != PlotRight {
		t.Errorf("ticks span %v to %v, want %d to %d", ticks[0].X, ticks[len(ticks)-1].X, PlotLeft, PlotRight)
	}
}
