package apps

import (
	"slices"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// afterKey is the x-sitectl key naming the apps an app starts after.
const afterKey = Extension + ".after"

// checkAfter checks every app's x-sitectl.after: each name is another app of the
// apps directory (names), and the apps' order has no cycle. A cycle is reported
// once, on the first app in it (by name), naming the whole loop.
func checkAfter(c *collector, names []string, list []*sites.App) {
	byName := map[string]*sites.App{}
	for _, a := range list {
		byName[a.Name] = a
	}
	ok := true
	for _, a := range list {
		for _, dep := range a.After {
			switch {
			case dep == a.Name:
				c.errf(a.File, "", afterKey, "app %s cannot start after itself: drop %q", a.Name, dep)
				ok = false
			case !slices.Contains(names, dep):
				c.errf(a.File, "", afterKey, "no app %q in the apps directory (apps: %s): name an app folder, or drop it", dep, strings.Join(names, ", "))
				ok = false
			}
		}
	}
	if !ok {
		return
	}
	// Depth-first search; state 1: on the current path, 2: done.
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		a := byName[n]
		if a == nil || state[n] == 2 {
			return nil
		}
		if state[n] == 1 {
			i := slices.Index(path, n)
			return append(slices.Clone(path[i:]), n)
		}
		state[n] = 1
		path = append(path, n)
		for _, dep := range a.After {
			if loop := visit(dep); loop != nil {
				return loop
			}
		}
		path = path[:len(path)-1]
		state[n] = 2
		return nil
	}
	for _, a := range list {
		path = path[:0]
		if loop := visit(a.Name); loop != nil {
			first := byName[loop[0]]
			c.errf(first.File, "", afterKey, "the apps' start order has a cycle: %s; drop one of these after: entries", strings.Join(loop, " → "))
			return
		}
	}
}
