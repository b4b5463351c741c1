package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

// valuesKeyRE finds the values.<stack>.<key> a stack's error is about.
var valuesKeyRE = regexp.MustCompile(`values\.[a-z0-9_-]+(\.[A-Za-z0-9_-]+)*`)

// sitePrefixRE is the "site X: " a stack puts before its messages (the problem
// names the site already).
var sitePrefixRE = regexp.MustCompile(`^(site [a-z0-9-]+: )+`)

// setInRE is the "(set in FILE)" a stack's message carries (the problem's source
// says it).
var setInRE = regexp.MustCompile(` \(set in (?:[^()]|\([^()]*\))*\)`)

// nestedRE is how the monitoring stack wraps another stack's render error (it
// renders every stack to count their replicas).
var nestedRE = regexp.MustCompile(`(?:desired replicas of (\S+)|(kong) targets) at ([a-z0-9-]+):`)

// stackProblems checks every site's stack values (values.<stack>.*) by the stacks'
// own rules: each stack the site runs is rendered (in memory; nothing is written
// or sent) and what it refuses becomes a problem naming the site, the key and the
// layer that set it; a problem in a layer every site shares is reported once.
// sites cannot do this itself (stacks import sites).
func stackProblems(topo *sites.Topology) sites.Problems {
	type failure struct {
		site, stack string
		err         error
	}
	var fails []failure
	type appFail struct{ file, msg string }
	appFails := map[appFail][]string{}
	var appOrder []appFail
	failed := map[string]bool{}
	var ps sites.Problems
	for _, s := range topo.Sites {
		for _, name := range s.Stacks {
			st, err := stacks.Get(name)
			if err != nil {
				ps = append(ps, sites.Problem{Severity: sites.SevError, File: topo.Origin(s.Name, "stacks"), Site: s.Name, Key: "stacks",
					Message: fmt.Sprintf("%v; remove it from the site's stacks", err)})
				continue
			}
			if _, err := st.Render(stacks.Input{Topo: topo, Site: s}); err != nil {
				fails = append(fails, failure{s.Name, name, err})
				failed[s.Name+"/"+name] = true
			}
		}
		// Apps: rendered and converted as deploy does (no secret read); the same
		// refusal at several sites is one problem naming them.
		for _, a := range topo.AppsAt(s.Name) {
			in := stacks.Input{Topo: topo, Site: s}
			r, err := stacks.RenderApp(in, a)
			if err == nil {
				_, err = stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{References: true})
			}
			if err != nil {
				k := appFail{a.File, strings.Replace(err.Error(), " for "+s.Name+": ", " at \x00sites\x00: ", 1)}
				if appFails[k] == nil {
					appOrder = append(appOrder, k)
				}
				appFails[k] = append(appFails[k], s.Name)
			}
		}
	}
	for _, k := range appOrder {
		msg := strings.Replace(k.msg, "\x00sites\x00", strings.Join(appFails[k], ", "), 1)
		ps = append(ps, sites.Problem{Severity: sites.SevError, File: k.file, Message: msg})
	}
	for _, f := range fails {
		// The same refusal seen again through another stack: reported once.
		if m := nestedRE.FindStringSubmatch(f.err.Error()); m != nil && failed[m[3]+"/"+m[1]+m[2]] {
			continue
		}
		ps = append(ps, stackProblem(topo, f.site, f.stack, f.err))
	}
	return dedupe(ps)
}

func stackProblem(topo *sites.Topology, site, stack string, err error) sites.Problem {
	msg := err.Error()
	// A stack may read another's settings (kong reads values.django-api): the
	// first values key named is the one at fault.
	key := strings.TrimRight(valuesKeyRE.FindString(msg), ".")
	p := sites.Problem{Severity: sites.SevError, Site: site, Key: key}
	if key == "" {
		p.File, p.Key = topo.Origin(site, "stacks"), "stacks"
		p.Message = fmt.Sprintf("site %s: stack %s cannot be rendered: %s", site, stack, msg)
		return p
	}
	p.File = topo.Origin(site, key)
	msg = setInRE.ReplaceAllString(msg, "")
	msg = sitePrefixRE.ReplaceAllString(msg, "")
	msg = strings.Replace(msg, key+" ", "", 1)
	if topo.Shared(p.File) {
		p.Site = ""
		p.Message = msg
		return p
	}
	p.Message = fmt.Sprintf("site %s: %s", site, msg)
	return p
}

// dedupe drops repeated problems (kong and django-api both read
// values.django-api.replicas), keeping the first.
func dedupe(ps sites.Problems) sites.Problems {
	seen := map[sites.Problem]bool{}
	var out sites.Problems
	for _, p := range ps {
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}
