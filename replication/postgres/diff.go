package postgres

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/sitectl/sitectl/plan"
)

// Phase orders the steps across sites: the schema everywhere first, then every
// publication, then subscriptions (which need the publisher's publication and the
// subscriber's tables), and the removals last.
type Phase int

// Phases, in apply order.
const (
	PhaseSchema Phase = iota
	PhasePublish
	PhaseUnsubscribe
	PhaseSubscribe
	PhaseDropSlot
	PhaseUnpublish
)

// ComponentPostgres is the component of the steps the replication part plans.
const ComponentPostgres plan.Component = "postgres"

// OpKind is what kind of change an Op makes; its value is how plans name it.
type OpKind string

// The kinds of Op.
const (
	OpSchema               OpKind = "schema"
	OpAppRole              OpKind = "app-role"
	OpCreatePublication    OpKind = "create-publication"
	OpAlterPublication     OpKind = "alter-publication"
	OpDropPublication      OpKind = "drop-publication"
	OpCreateSubscription   OpKind = "create-subscription"
	OpRecreateSubscription OpKind = "recreate-subscription"
	OpAlterSubscription    OpKind = "alter-subscription"
	OpDropSubscription     OpKind = "drop-subscription"
	OpDropSlot             OpKind = "drop-slot"
	// OpBlocked is a subscription that cannot be made true yet (nothing applies).
	OpBlocked OpKind = "blocked"
)

// Op is what a step does, as data: the planner's output and the applier's input.
type Op struct {
	Kind  OpKind
	Site  string
	Phase Phase
	// Publication / Subscription are the desired objects the op makes true.
	Publication  *Publication
	Subscription *Subscription
	// Object names the live object to drop.
	Object string
	// Subscriber is, for a stale slot of a wanted flow, the site whose subscription
	// would use it: the drop is skipped if that subscription exists by then.
	Subscriber string
	// Statements are the SQL statements, run one by one, outside a transaction.
	// Connection strings are not in them: create/alter-subscription render theirs at
	// apply time from the secret reference.
	Statements []string
	// SetConnection, Enable and Refresh are parts of an alter-subscription.
	SetConnection, Enable, Refresh bool
	// ClearCopies deletes the subscriber's earlier copies of the rows the
	// subscription is about to copy afresh (table → count).
	ClearCopies map[string]int64
	// WaitPublisher waits for the publisher's publication (and, for a create, for
	// its stale slot to be gone) before running.
	WaitPublisher bool
}

// Change is one planned step with its op.
type Change struct {
	Step plan.Step
	Op   Op
}

// Extras are the reads the diff needs beyond the catalogs: earlier copies at a
// subscriber and pending conflicts of disabled subscriptions.
type Extras struct {
	// Copies maps subscription name → table → rows at the subscriber matching the
	// flow's filter (only for subscriptions about to be created).
	Copies map[string]map[string]int64
	// Conflicts maps subscription name → the change its apply worker fails on.
	Conflicts map[string]*Conflict
	// SchemaChanged maps site → why the schema file must be (re)applied there.
	Schema map[string]string
	// Roles maps site → what makes its application role (postgres.app_user) right.
	Roles map[string]RoleChange
}

// RoleChange is a site's application role step: its action and diff lines.
type RoleChange struct {
	User   string
	Action plan.Action
	Diff   []string
}

// Diff computes the changes that bring every live site to the desired state. It is
// pure: lives must hold every site of d.
func Diff(d *Desired, lives map[string]*Live, ex Extras) map[string][]Change {
	out := map[string][]Change{}
	add := func(c Change) {
		c.Step.Site = c.Op.Site
		c.Step.Component = ComponentPostgres
		out[c.Op.Site] = append(out[c.Op.Site], c)
	}
	for _, site := range d.SiteNames() {
		if why := ex.Schema[site]; why != "" {
			add(Change{Step: plan.Step{Action: plan.Update, Name: "schema", Diff: []string{why}},
				Op: Op{Kind: OpSchema, Site: site, Phase: PhaseSchema}})
		}
		// After the schema: its grants cover the tables the schema makes.
		if r, ok := ex.Roles[site]; ok && len(r.Diff) > 0 {
			add(Change{Step: plan.Step{Action: r.Action, Name: "application role " + r.User, Diff: r.Diff},
				Op: Op{Kind: OpAppRole, Site: site, Phase: PhaseSchema, Object: r.User}})
		}
	}
	for _, site := range d.SiteNames() {
		live := lives[site]
		wantPubs := map[string]bool{}
		for i := range d.Publications[site] {
			p := &d.Publications[site][i]
			wantPubs[p.Name] = true
			if c, ok := diffPublication(p, live.Publications[p.Name]); ok {
				add(c)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(live.Publications)) {
			if !wantPubs[name] {
				add(Change{Step: plan.Step{Action: plan.Remove, Name: "publication " + name, Note: "sitectl-owned, no longer in the topology"},
					Op: Op{Kind: OpDropPublication, Site: site, Phase: PhaseUnpublish, Object: name,
						Statements: []string{"DROP PUBLICATION IF EXISTS " + quoteIdent(name)}}})
			}
		}
		wantSubs := map[string]bool{}
		for i := range d.Subscriptions[site] {
			s := &d.Subscriptions[site][i]
			wantSubs[s.Name] = true
			if c, ok := diffSubscription(s, live.Subscriptions[s.Name], lives[s.Flow.From], ex); ok {
				add(c)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(live.Subscriptions)) {
			if wantSubs[name] {
				continue
			}
			q := quoteIdent(name)
			add(Change{Step: plan.Step{Action: plan.Remove, Name: "subscription " + name,
				Note: "sitectl-owned, no longer in the topology; its slot on the publisher is dropped there if the publisher is still a site"},
				Op: Op{Kind: OpDropSubscription, Site: site, Phase: PhaseUnsubscribe, Object: name, Statements: []string{
					"ALTER SUBSCRIPTION " + q + " DISABLE",
					"ALTER SUBSCRIPTION " + q + " SET (slot_name = NONE)",
					"DROP SUBSCRIPTION " + q,
				}}})
		}
		// Slots: keep those a live subscription of the right name uses.
		for _, name := range slices.Sorted(maps.Keys(live.Slots)) {
			keep, subscriber := false, ""
			for _, p := range d.Publications[site] {
				if p.SlotName() == name {
					subscriber = p.Flow.To
					if sub := lives[p.Flow.To]; sub != nil && sub.Subscriptions[name] != nil {
						keep = true
					}
				}
			}
			lost := live.Slots[name].WALStatus == "lost"
			// An active slot streams to a subscriber that exists, even if it was
			// created after the subscriber was read (sites deploying in parallel).
			if !lost && (keep || (subscriber != "" && live.Slots[name].Active)) {
				continue
			}
			note := "no subscription uses it: it only holds WAL back"
			if lost {
				note = "lost (it passed max_slot_wal_keep_size): its subscription is re-created with a fresh copy"
			}
			if live.Slots[name].Active {
				note += fmt.Sprintf(" (its walsender, pid %d, is stopped first)", live.Slots[name].ActivePID)
			}
			add(Change{Step: plan.Step{Action: plan.Remove, Name: "slot " + name, Note: note},
				Op: Op{Kind: OpDropSlot, Site: site, Phase: PhaseDropSlot, Object: name, Subscriber: subscriber}})
		}
	}
	for site := range out {
		sort.SliceStable(out[site], func(i, j int) bool { return out[site][i].Op.Phase < out[site][j].Op.Phase })
	}
	return out
}

func diffPublication(p *Publication, live *LivePublication) (Change, bool) {
	op := Op{Site: p.Site, Phase: PhasePublish, Publication: p}
	step := plan.Step{Name: "publication " + p.Name}
	if live == nil || live.AllTables {
		op.Kind = OpCreatePublication
		step.Action = plan.Create
		step.Diff = []string{"flow: " + p.Flow.String(), "tables: " + strings.Join(tableNames(p.Tables), ", "),
			"row filter: " + p.Flow.Filter, "publish: " + Publish}
		if live != nil {
			op.Statements = append(op.Statements, "DROP PUBLICATION "+quoteIdent(p.Name))
			step.Action = plan.Update
			step.Note = "it publishes ALL TABLES: recreated with the replicated tables only"
		}
		op.Statements = append(op.Statements, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish = %s)",
			quoteIdent(p.Name), tablesSQL(p.Tables), quoteLiteral(Publish)))
		return Change{Step: step, Op: op}, true
	}
	op.Kind = OpAlterPublication
	step.Action = plan.Update
	want := map[string]string{}
	for _, t := range p.Tables {
		want[t.Name] = t.Filter
	}
	tablesChanged := false
	for _, t := range slices.Sorted(maps.Keys(want)) {
		got, ok := live.Tables[t]
		switch {
		case !ok:
			step.Diff = append(step.Diff, fmt.Sprintf("+ table %s WHERE (%s)", t, want[t]))
			tablesChanged = true
		case normFilter(got) != normFilter(want[t]):
			step.Diff = append(step.Diff, fmt.Sprintf("~ table %s row filter: %s → (%s)", t, orNone(got), want[t]))
			tablesChanged = true
		}
	}
	for _, t := range slices.Sorted(maps.Keys(live.Tables)) {
		if _, ok := want[t]; !ok {
			step.Diff = append(step.Diff, "- table "+t)
			tablesChanged = true
		}
	}
	if tablesChanged {
		op.Statements = append(op.Statements, fmt.Sprintf("ALTER PUBLICATION %s SET TABLE %s", quoteIdent(p.Name), tablesSQL(p.Tables)))
	}
	if live.Publish != Publish {
		step.Diff = append(step.Diff, fmt.Sprintf("publish: %s → %s", live.Publish, Publish))
		op.Statements = append(op.Statements, fmt.Sprintf("ALTER PUBLICATION %s SET (publish = %s)", quoteIdent(p.Name), quoteLiteral(Publish)))
	}
	return Change{Step: step, Op: op}, len(op.Statements) > 0
}

func diffSubscription(s *Subscription, live *LiveSubscription, publisher *Live, ex Extras) (Change, bool) {
	op := Op{Site: s.Site, Phase: PhaseSubscribe, Subscription: s, WaitPublisher: true}
	step := plan.Step{Name: "subscription " + s.Name}
	if live == nil {
		op.Kind = OpCreateSubscription
		step.Action = plan.Create
		step.Diff = []string{
			fmt.Sprintf("from %s, publication %s", s.Flow.From, s.Publication),
			"connection: " + s.Conn.String(),
			"slot: " + s.Name + " on " + s.Flow.From,
			"options: disable_on_error = true, copy_data = true",
		}
		if publisher != nil && publisher.Slots[s.Name] != nil {
			step.Diff = append(step.Diff, "replaces the stale slot "+s.Name+" on "+s.Flow.From)
		}
		clearCopies(&op, &step, ex)
		return Change{Step: step, Op: op}, true
	}
	q := quoteIdent(s.Name)
	if publisher != nil && (publisher.Slots[s.Name] == nil || publisher.Slots[s.Name].WALStatus == "lost") {
		// Without its slot the subscription can never resume: make it again.
		why := "its slot " + s.Name + " is gone from " + s.Flow.From
		if publisher.Slots[s.Name] != nil {
			why = "its slot " + s.Name + " on " + s.Flow.From + " is lost (past max_slot_wal_keep_size)"
		}
		op.Kind = OpRecreateSubscription
		step.Action = plan.Update
		step.Diff = []string{"re-create: " + why, "connection: " + s.Conn.String(), "options: disable_on_error = true, copy_data = true"}
		op.Statements = []string{
			"ALTER SUBSCRIPTION " + q + " DISABLE",
			"ALTER SUBSCRIPTION " + q + " SET (slot_name = NONE)",
			"DROP SUBSCRIPTION " + q,
		}
		clearCopies(&op, &step, ex)
		return Change{Step: step, Op: op}, true
	}
	op.Kind = OpAlterSubscription
	step.Action = plan.Update
	if !live.DisableOnError {
		step.Diff = append(step.Diff, "disable_on_error: false → true")
		op.Statements = append(op.Statements, "ALTER SUBSCRIPTION "+q+" SET (disable_on_error = true)")
	}
	if want, err := s.Conn.Render(); err == nil && want != live.ConnInfo {
		op.SetConnection = true
		if Redact(want) == Redact(live.ConnInfo) {
			step.Diff = append(step.Diff, "connection: password changed (now from "+s.Conn.Password.String()+")")
		} else {
			step.Diff = append(step.Diff, fmt.Sprintf("connection: %s → %s", Redact(live.ConnInfo), s.Conn.String()))
		}
	}
	if !slices.Equal(live.Publications, []string{s.Publication}) {
		step.Diff = append(step.Diff, fmt.Sprintf("publications: %s → %s", strings.Join(live.Publications, ", "), s.Publication))
		op.Statements = append(op.Statements, fmt.Sprintf("ALTER SUBSCRIPTION %s SET PUBLICATION %s WITH (refresh = false)", q, quoteIdent(s.Publication)))
		op.Refresh = true
	}
	want := s.Tables
	if got := slices.Sorted(maps.Keys(live.Tables)); !slices.Equal(got, want) {
		step.Diff = append(step.Diff, fmt.Sprintf("tables: %s → %s (refresh publication; new tables are copied)", orNone(strings.Join(got, ", ")), strings.Join(want, ", ")))
		op.Refresh = true
		clearCopies(&op, &step, ex)
	}
	if !live.Enabled {
		if c := ex.Conflicts[s.Name]; c != nil {
			// Enabling would fail on the same change again: leave it to the operator.
			step.Diff = append(step.Diff, "disabled by a conflict: "+c.Summary())
			step.Note = "not enabled until the conflict is resolved: " + c.Resolution()
			if len(op.Statements) == 0 && !op.SetConnection && !op.Refresh {
				return Change{Step: step, Op: Op{Kind: OpBlocked, Site: s.Site, Phase: PhaseSubscribe}}, true
			}
			op.Refresh, op.ClearCopies = false, nil
		} else {
			step.Diff = append(step.Diff, "enabled: false → true")
			step.Note = "disabled earlier (a connection loss during a partition also disables it, with disable_on_error); no conflicting change is pending"
			op.Enable = true
		}
	}
	return Change{Step: step, Op: op}, len(op.Statements) > 0 || op.SetConnection || op.Enable || op.Refresh
}

// clearCopies plans deleting the subscriber's earlier copies of the rows an initial
// copy brings again (they would collide with it and disable the subscription).
func clearCopies(op *Op, step *plan.Step, ex Extras) {
	s := op.Subscription
	copies := ex.Copies[s.Name]
	for _, t := range slices.Sorted(maps.Keys(copies)) {
		if n := copies[t]; n > 0 {
			if op.ClearCopies == nil {
				op.ClearCopies = map[string]int64{}
			}
			op.ClearCopies[t] = n
			// The count is a note: the diff line stays the same while rows change.
			step.Diff = append(step.Diff, fmt.Sprintf("replaces the earlier copies in %s of rows %s sends with a fresh copy", t, s.Flow.From))
			step.Note = plan.JoinNotes(step.Note, fmt.Sprintf("%d earlier copies in %s", n, t))
		}
	}
}

func tablesSQL(ts []Table) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s WHERE (%s)", quoteTable(t.Name), t.Filter)
	}
	return strings.Join(parts, ", ")
}

func tableNames(ts []Table) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteTable(t string) string {
	schema, name, ok := strings.Cut(t, ".")
	if !ok {
		return quoteIdent(t)
	}
	return quoteIdent(schema) + "." + quoteIdent(name)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
