package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/sites"
)

// appsDirectory is the apps directory in effect: --apps-dir, SITECTL_APPS_DIR, or
// <config-dir>/../apps.
func (g *globals) appsDirectory() string {
	if g.appsDir != "" {
		return g.appsDir
	}
	return apps.DefaultDir(g.configDir)
}

// knownStacks are the names values.<name> may key: the built-in stacks and the
// app folders (an unreadable apps dir is reported by withApps).
func (g *globals) knownStacks() []string {
	names, _ := apps.Names(g.appsDirectory())
	out := slices.Clone(sites.KnownStacks)
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// withApps reads and validates the apps for topo's environment and puts them on
// topo; their problems come back as sites.Problems.
func (g *globals) withApps(topo *sites.Topology) error {
	list, ps := apps.Load(apps.Options{Dir: g.appsDirectory(), Topo: topo, Environ: g.environ})
	if len(ps) > 0 {
		return ps
	}
	topo.Apps = list
	return nil
}

// appSites returns the app named by --app and the selected sites that run it.
func (g *globals) appSites(topo *sites.Topology, selected []*sites.Site, name string) (*sites.App, []*sites.Site, error) {
	a := topo.App(name)
	if a == nil {
		var names []string
		for _, x := range topo.Apps {
			names = append(names, x.Name)
		}
		return nil, nil, fmt.Errorf("--app %q: no such app in %s (apps: %s)", name, g.appsDirectory(), strings.Join(names, ", "))
	}
	var at []*sites.Site
	for _, s := range selected {
		if _, ok := a.Sites[s.Name]; ok {
			at = append(at, s)
		}
	}
	if len(at) == 0 {
		return nil, nil, fmt.Errorf("--app %s: none of the selected sites runs it (it runs at %s; see x-sitectl.sites in %s)", a.Name, strings.Join(slices.Sorted(maps.Keys(a.Sites)), ", "), a.File)
	}
	return a, at, nil
}
