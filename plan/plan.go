// Package plan holds the typed steps every part of sitectl (swarm, networks, stacks,
// tunnels, replication) computes from desired and live state, and prints them the
// same way for `sitectl plan` and `sitectl deploy`: deploy applies exactly the steps
// plan shows.
package plan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// Action is what a step does.
type Action string

// Actions. Noop steps are not shown; they exist so parts can report "checked".
const (
	Create Action = "create"
	Update Action = "update"
	Remove Action = "remove"
	Reload Action = "reload"
	Noop   Action = "noop"
)

func (a Action) symbol() string {
	switch a {
	case Create:
		return "+"
	case Update:
		return "~"
	case Remove:
		return "-"
	case Reload:
		return "↻"
	}
	return " "
}

// Component is the kind of object a step changes; its value is how plans name it.
// Each part names its own (swarm.ComponentNode, deploy.ComponentService,
// tunnels.ComponentTunnel, ...).
type Component string

// Step is one change to one object of one site.
type Step struct {
	Site      string    `json:"site"`
	Component Component `json:"component"` // swarm, node, network, secret, config, service, tunnel, postgres, mongo
	Action    Action    `json:"action"`
	Name      string    `json:"name"`
	// Diff lists what changes, one readable line each ("replicas: 1 → 2"). Never a
	// secret value.
	Diff []string `json:"diff,omitempty"`
	// Note explains something the operator should know (e.g. why encryption is off).
	Note string `json:"note,omitempty"`
	// Group names the unit deploy applies and waits for on its own ("app hello"),
	// whose failure leaves the site's other groups and parts to run; "" for the
	// rest of a part.
	Group string `json:"group,omitempty"`
	// Apply makes the change; nil for steps that only inform.
	Apply func(ctx context.Context) error `json:"-"`
}

// JoinNotes joins the non-empty notes with "; ".
func JoinNotes(notes ...string) string {
	return strings.Join(slices.DeleteFunc(notes, func(n string) bool { return n == "" }), "; ")
}

// String is the step's one-line summary: "+ network data".
func (s Step) String() string {
	return fmt.Sprintf("%s %s %s", s.Action.symbol(), s.Component, s.Name)
}

// Part is one piece of the deploy path for a site. Plan reads live state and
// returns the steps that bring it to the desired state; it changes nothing.
type Part interface {
	Name() string
	Plan(ctx context.Context, topo *sites.Topology, site *sites.Site) ([]Step, error)
}

// Apply applies steps in order, as deploy applies a part's steps: a step that
// only informs (Noop, or no Apply) is skipped, each other step is reported through
// report before it runs (nil: silent; the returned func gets its outcome), and the
// first error stops it, naming the step. It returns the steps applied.
func Apply(ctx context.Context, steps []Step, report func(Step) func(error)) ([]Step, error) {
	var applied []Step
	for _, st := range steps {
		if st.Action == Noop || st.Apply == nil {
			continue
		}
		done := func(error) {}
		if report != nil {
			done = report(st)
		}
		err := st.Apply(ctx)
		done(err)
		if err != nil {
			return applied, fmt.Errorf("%s: %w", st, err)
		}
		applied = append(applied, st)
	}
	return applied, nil
}

// Closer is a part that holds connections across the sites of a run (a database
// pool). Whoever runs the parts (deploy.Plan, deploy.Deploy) calls Close once every
// site is done; the part reopens what it needs if it is used again.
type Closer interface {
	Close()
}

// Close closes every part that holds connections (Closer).
func Close(parts []Part) {
	for _, p := range parts {
		if c, ok := p.(Closer); ok {
			c.Close()
		}
	}
}

// NotYet marks a part's error as a fact that cannot exist before the steps planned
// ahead of the part are applied: a database the stacks part is about to start
// cannot answer yet. When earlier parts have pending steps, plan shows such a part
// as planned during deploy (deploy plans each part after the previous one
// applied). Every other error fails the site's plan: a missing input (a secret
// whose source is unset or unreadable, a bad certificate) must never hide behind
// "planned during deploy".
func NotYet(err error) error {
	if err == nil {
		return nil
	}
	return notYetError{err}
}

// IsNotYet reports whether err (or an error it wraps) was marked with NotYet.
func IsNotYet(err error) bool {
	var n notYetError
	return errors.As(err, &n)
}

type notYetError struct{ err error }

func (e notYetError) Error() string { return e.err.Error() }
func (e notYetError) Unwrap() error { return e.err }

// SitePlan is the plan of one site.
type SitePlan struct {
	Site  string   `json:"site"`
	Steps []Step   `json:"steps"`
	Notes []string `json:"notes,omitempty"`
	// Error is why the site could not be planned (unreachable engine...).
	Error string `json:"error,omitempty"`
}

// Plan is the plan of every selected site in one environment.
type Plan struct {
	Env   string     `json:"environment"`
	Sites []SitePlan `json:"sites"`
	// Prune says the plan includes removing what the configuration no longer wants.
	Prune bool `json:"prune,omitempty"`
}

// Counts returns how many steps create, update (incl. reload) and remove.
func (p *Plan) Counts() (create, update, remove int) {
	for _, sp := range p.Sites {
		for _, s := range sp.Steps {
			switch s.Action {
			case Create:
				create++
			case Update, Reload:
				update++
			case Remove:
				remove++
			}
		}
	}
	return
}

// Changes is the number of steps that change something.
func (p *Plan) Changes() int {
	c, u, r := p.Counts()
	return c + u + r
}

// Failed lists the sites that could not be planned.
func (p *Plan) Failed() []string {
	var out []string
	for _, sp := range p.Sites {
		if sp.Error != "" {
			out = append(out, sp.Site)
		}
	}
	return out
}

// Render prints the plan for people:
//
//	douala (env lab)
//	  + network data  subnet 10.111.2.0/24
//	      note: encryption off: lab kernel has no ESP
//	  ~ service django-api_web
//	      replicas: 1 → 2
//	Plan: 1 to create, 1 to update, 0 to remove.
func (p *Plan) Render(w io.Writer) error {
	var b strings.Builder
	for _, sp := range p.Sites {
		fmt.Fprintf(&b, "%s (env %s)\n", sp.Site, p.Env)
		if sp.Error != "" {
			fmt.Fprintf(&b, "  ✗ cannot plan: %s\n", sp.Error)
		}
		shown, group := 0, ""
		for _, s := range sp.Steps {
			if s.Action == Noop {
				continue
			}
			shown++
			if s.Group != group && s.Group != "" {
				fmt.Fprintf(&b, "  %s:\n", s.Group)
			}
			group = s.Group
			fmt.Fprintf(&b, "  %s\n", s)
			for _, d := range s.Diff {
				fmt.Fprintf(&b, "      %s\n", d)
			}
			if s.Note != "" {
				fmt.Fprintf(&b, "      note: %s\n", s.Note)
			}
		}
		if shown == 0 && sp.Error == "" {
			b.WriteString("  no changes\n")
		}
		for _, n := range sp.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
	}
	c, u, r := p.Counts()
	if c+u+r == 0 && len(p.Failed()) == 0 {
		b.WriteString("Nothing to do: every site matches its configuration.\n")
	} else {
		fmt.Fprintf(&b, "Plan: %d to create, %d to update, %d to remove.\n", c, u, r)
	}
	if f := p.Failed(); len(f) > 0 {
		fmt.Fprintf(&b, "Could not plan: %s.\n", strings.Join(f, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Stale compares a saved plan (the one an operator reviewed) with one made now for
// the same sites. Steps are compared by what they change (component, action, name
// and diff; notes only explain). It returns one line per difference, naming the
// site; none when the saved plan still holds.
func Stale(saved, now *Plan) []string {
	var out []string
	if saved.Env != now.Env {
		out = append(out, fmt.Sprintf("the saved plan is for environment %s, not %s", saved.Env, now.Env))
	}
	switch {
	case saved.Prune && !now.Prune:
		out = append(out, "the saved plan was made with --prune: deploy with --prune")
	case !saved.Prune && now.Prune:
		out = append(out, "the saved plan was made without --prune: deploy without it")
	}
	bySite := map[string]SitePlan{}
	for _, sp := range saved.Sites {
		bySite[sp.Site] = sp
	}
	seen := map[string]bool{}
	for _, sp := range now.Sites {
		seen[sp.Site] = true
		old, ok := bySite[sp.Site]
		switch {
		case !ok:
			out = append(out, sp.Site+": not in the saved plan")
			continue
		case old.Error != "":
			out = append(out, fmt.Sprintf("%s: the saved plan could not plan it (%s)", sp.Site, old.Error))
			continue
		case sp.Error != "":
			out = append(out, fmt.Sprintf("%s: cannot be planned now (%s)", sp.Site, sp.Error))
			continue
		}
		was, is := changeSet(old.Steps), changeSet(sp.Steps)
		for _, k := range was.keys {
			if is.n[k] < was.n[k] {
				out = append(out, fmt.Sprintf("%s: no longer %s", sp.Site, k))
			}
		}
		for _, k := range is.keys {
			if was.n[k] < is.n[k] {
				out = append(out, fmt.Sprintf("%s: now also %s", sp.Site, k))
			}
		}
	}
	for _, sp := range saved.Sites {
		if !seen[sp.Site] {
			out = append(out, sp.Site+": in the saved plan, not selected now")
		}
	}
	return out
}

// changeList counts a plan's changes by a one-line description ("~ service x
// (replicas: 1 → 2)"), keeping the first-seen order.
type changeList struct {
	keys []string
	n    map[string]int
}

func changeSet(in []Step) changeList {
	s := changeList{n: map[string]int{}}
	for _, st := range in {
		if st.Action == Noop {
			continue
		}
		k := st.String()
		if len(st.Diff) > 0 {
			k += " (" + strings.Join(st.Diff, "; ") + ")"
		}
		if s.n[k] == 0 {
			s.keys = append(s.keys, k)
		}
		s.n[k]++
	}
	return s
}
