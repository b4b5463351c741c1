package mongo

import (
	"context"
	"fmt"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// ComponentMongo is the component of the steps this part plans.
const ComponentMongo plan.Component = "mongo"

// Part is the MongoDB part of `sitectl plan` and `deploy`: for each site, the
// replica set changes that site owns (see Changes).
type Part struct {
	// Connect opens the connection to the set (NewConn when nil; tests set a dialer).
	Connect func(topo *sites.Topology) *Conn
}

// Name is the part's name.
func (Part) Name() string { return "mongo" }

// Plan reads the live replica set and returns the site's steps. When no member
// answers yet (first deploy: the mongo stack is deployed in the same run) the steps
// are those of a new set; applying them re-reads the live state first.
func (p Part) Plan(ctx context.Context, topo *sites.Topology, site *sites.Site) ([]plan.Step, error) {
	if !site.HasStack("mongo") {
		return nil, nil
	}
	desired, err := Build(topo)
	if err != nil {
		return nil, err
	}
	// The plan's connection ends with Plan; each step opens its own when applied (it
	// re-reads the set first), so no client outlives the work that needs it.
	conn := p.conn(topo)
	// A credential that cannot be read is a missing input, not a member that does
	// not answer yet: fail the plan naming it.
	for _, h := range Hosts(topo) {
		if _, err := conn.credential(h); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mongo %s: %w", site.Name, err)
		}
	}
	live, err := conn.ReadLive(ctx)
	conn.Close()
	note := ""
	if err != nil {
		if live == nil || len(live.Reachable()) > 0 {
			return nil, fmt.Errorf("mongo %s: %w", site.Name, err)
		}
		live, note = nil, "no member answers yet (the mongo stack deploys first); these steps re-read the replica set when applied"
	}
	changes := Changes(topo, desired, live, site.Name)
	steps := Steps(topo, func() *Conn { return p.conn(topo) }, changes)
	if note != "" && len(steps) > 0 {
		steps[0].Note = plan.JoinNotes(steps[0].Note, note)
	}
	if len(steps) == 0 {
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentMongo, Action: plan.Noop, Name: "replica set " + desired.Name})
	}
	// The partition analysis is shown once, under the initiating site, as notes
	// (Noop steps with a note become the site plan's notes).
	if site.Name == Initiator(topo) {
		if a, err := Analyze(topo); err == nil {
			for _, n := range a.PlanNotes() {
				steps = append(steps, plan.Step{Site: site.Name, Component: ComponentMongo, Action: plan.Noop, Name: "partition analysis", Note: n})
			}
		}
	}
	return steps, nil
}

func (p Part) conn(topo *sites.Topology) *Conn {
	if p.Connect != nil {
		return p.Connect(topo)
	}
	return NewConn(topo)
}

// Steps turns changes into plan steps; each step, when applied, opens a connection
// with open and closes it when done.
func Steps(topo *sites.Topology, open func() *Conn, changes []Change) []plan.Step {
	out := make([]plan.Step, 0, len(changes))
	for _, ch := range changes {
		st := plan.Step{Site: ch.Site, Component: ComponentMongo, Diff: ch.Diff, Note: ch.Note}
		switch ch.Kind {
		case KindInitiate:
			st.Action, st.Name = plan.Create, "replica set "+setName(topo)
		case KindWriteConcern:
			st.Action, st.Name = plan.Update, "default write concern"
		case KindAdd:
			st.Action, st.Name = plan.Create, "member "+ch.Member.Host
		case KindUpdate:
			st.Action, st.Name = plan.Update, "member "+ch.Member.Host
		case KindRemove:
			st.Action, st.Name = plan.Remove, "member "+ch.Member.Host
		}
		if ch.Kind == KindAdd || ch.Kind == KindUpdate || ch.Kind == KindRemove {
			vote := "no voting change"
			if ch.Voting {
				vote = "one voting change"
			}
			st.Note = plan.JoinNotes(st.Note, "one replSetReconfig ("+vote+"), then waits until a majority holds the new config")
		}
		st.Apply = func(ctx context.Context) error {
			conn := open()
			defer conn.Close()
			return conn.Apply(ctx, ch)
		}
		out = append(out, st)
	}
	return out
}
