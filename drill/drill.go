// Package drill runs failure drills against the sites — partition, cloud loss,
// database down, node loss — and proves the data survives them: it cuts, writes
// site-owned rows on every side, always heals (on success, on a failing step, on
// SIGINT/SIGTERM, on timeout), waits for convergence, verifies Jepsen-style that every
// acknowledged write is present exactly once wherever it should be, and reports as
// JSON and as an HTML page with a timeline.
//
// The drill talks to the sites through the small interfaces below, so its core
// (always-heal, timeline, verification, report) does not depend on how a link is cut
// (vici in production and in the lab) or how a database is reached.
package drill

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/sites"
)

// Table is the table drills write to. Its schema (site, id) primary key makes the
// owner column part of the replica identity, as every replicated table's must be.
const Table = "sitectl_drill"

// TableDDL creates the drill table; the same statement is safe to run at every site.
const TableDDL = `CREATE TABLE IF NOT EXISTS ` + Table + ` (
    site       text        NOT NULL,
    id         uuid        NOT NULL,
    run        text        NOT NULL,
    seq        integer     NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, id)
)`

// Cutter cuts and heals one link between two sites. Heal must be safe to call on a
// link that is not cut, and more than once.
type Cutter interface {
	Cut(ctx context.Context, link sites.Link) error
	Heal(ctx context.Context, link sites.Link) error
}

// Resyncer puts replication back to work after the links are healed: with
// disable_on_error (docs/design.md decision 4) PostgreSQL 15 also disables a subscription
// whose connection was lost, so the heal ends with what `sitectl deploy` does —
// enable the subscriptions no conflict is holding. It returns what it changed.
type Resyncer interface {
	Resync(ctx context.Context) (string, error)
}

// Fault is one injected failure a drill always removes again: a cut link, a stopped
// database service, a drained node.
type Fault interface {
	// Name names the faulty thing: "douala-cloud", "service postgres_db at douala".
	Name() string
	Inject(ctx context.Context) error
	// Remove undoes Inject; it must be safe on a fault that was not (fully) injected
	// and safe to call more than once.
	Remove(ctx context.Context) error
	// Events are the timeline kinds of Inject and Remove (cut/heal, down/restore).
	Events() (inject, remove string)
	// Manual is the command an operator runs when Remove keeps failing.
	Manual() string
}

// LinkFault cuts one link with a Cutter.
type LinkFault struct {
	Cutter Cutter
	Link   sites.Link
}

// LinkFaults makes one fault per link.
func LinkFaults(c Cutter, links []sites.Link) []Fault {
	out := make([]Fault, len(links))
	for i, l := range links {
		out[i] = LinkFault{Cutter: c, Link: l}
	}
	return out
}

// Name is the link's name (douala-cloud).
func (f LinkFault) Name() string { return f.Link.Name() }

// Inject cuts the link.
func (f LinkFault) Inject(ctx context.Context) error { return f.Cutter.Cut(ctx, f.Link) }

// Remove heals the link.
func (f LinkFault) Remove(ctx context.Context) error { return f.Cutter.Heal(ctx, f.Link) }

// Events are the report's event names for the cut and the heal.
func (f LinkFault) Events() (string, string) { return EvCut, EvHeal }

// Manual is the command that heals the link by hand.
func (f LinkFault) Manual() string { return "sitectl tunnels up --link " + f.Link.Name() }

// Probe observes, while the faults are in place, what keeps working and what does
// not (services still running, tasks rescheduled); its findings go in the report.
type Probe interface {
	Observe(ctx context.Context) []Observation
}

// LinkChecker reports whether a link carries traffic (tunnel SAs installed). Optional:
// preflight and the post-heal check use it when set.
type LinkChecker interface {
	LinkUp(ctx context.Context, link sites.Link) (bool, error)
}

// Row is one drill row as written and as read back.
type Row struct {
	ID   uuid.UUID `json:"id"`
	Site string    `json:"site"` // the owner column: where the row was written
	Run  string    `json:"run"`
	Seq  int       `json:"seq"`
}

// Store is one site's database as the drill uses it.
type Store interface {
	// Ping checks the database answers.
	Ping(ctx context.Context) error
	// Prepare creates the drill table when missing.
	Prepare(ctx context.Context) error
	// Insert writes one row; nil means the database acknowledged (committed) it.
	Insert(ctx context.Context, r Row) error
	// Rows returns every drill row of run held at this site, whoever owns it.
	Rows(ctx context.Context, run string) ([]Row, error)
}

// FlowState is the live state of one replication flow (From publishes, To subscribes).
type FlowState struct {
	From string `json:"from"`
	To   string `json:"to"`
	// State is streaming, catchup, down (no worker), or disabled (by error or by hand).
	State      string  `json:"state"`
	Enabled    bool    `json:"enabled"`
	LagBytes   int64   `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
	// ApplyErrors and SyncErrors are the subscription's cumulative error counters.
	ApplyErrors int64  `json:"apply_errors"`
	SyncErrors  int64  `json:"sync_errors"`
	LastError   string `json:"last_error,omitempty"`
	// Published reports whether the drill table is in the flow's publication.
	Published bool `json:"published"`
}

// Name is "douala→cloud".
func (f FlowState) Name() string { return f.From + "→" + f.To }

// Flow states.
const (
	StateStreaming = "streaming"
	StateCatchup   = "catchup"
	StateDown      = "down"
	StateDisabled  = "disabled"
)

// Observer reports the replication flows between the sites.
type Observer interface {
	Flows(ctx context.Context) ([]FlowState, error)
}

// Settings common to the drills; zero values take the defaults.
type Settings struct {
	// Duration is how long the cut (or outage) lasts.
	Duration time.Duration
	// Writes is how many rows each site writes during the cut.
	Writes int
	// Converge bounds the wait for convergence after the heal.
	Converge time.Duration
	// Sample is the interval of lag samples and convergence polls.
	Sample time.Duration
	// HealAttempts and HealBackoff bound the heal retries; HealTimeout bounds each try.
	HealAttempts int
	HealBackoff  time.Duration
	HealTimeout  time.Duration
	// MaxLagBytes is the largest lag preflight accepts on a flow.
	MaxLagBytes int64
}

func (s Settings) withDefaults() Settings {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&s.Duration, 60*time.Second)
	def(&s.Converge, 2*time.Minute)
	def(&s.Sample, 250*time.Millisecond)
	def(&s.HealBackoff, time.Second)
	def(&s.HealTimeout, 30*time.Second)
	if s.Writes <= 0 {
		s.Writes = 1000
	}
	if s.HealAttempts <= 0 {
		s.HealAttempts = 5
	}
	if s.MaxLagBytes <= 0 {
		s.MaxLagBytes = 1 << 20
	}
	return s
}

// FaultRecord says what one fault changed and what a later `sitectl drill heal` has
// to put back, without the drill that injected it: a drill killed before it healed
// (SIGKILL, a lost machine) leaves only this.
type FaultRecord struct {
	// Kind is link, service or node.
	Kind string `json:"kind"`
	// What is the fault as an operator reads it: "tunnel douala-cloud cut".
	What string `json:"what"`
	// Sites are the sites the fault touches; the record is kept in each one's swarm.
	Sites []string `json:"sites"`
	// Link: the link whose tunnel is cut (link).
	Link string `json:"link,omitempty"`
	// Site, Service and Replicas: the service scaled to zero and its replica count
	// before (service).
	Site     string  `json:"site,omitempty"`
	Service  string  `json:"service,omitempty"`
	Replicas *uint64 `json:"replicas,omitempty"`
	// Node, NodeID and Availability: the node drained and its availability before
	// (node).
	Node         string `json:"node,omitempty"`
	NodeID       string `json:"node_id,omitempty"`
	Availability string `json:"availability,omitempty"`
	// Services are the IDs of the services that ran a task on the node before the
	// drain: the heal waits until they run again (node).
	Services []string `json:"services,omitempty"`
}

// Fault record kinds.
const (
	RecordLink    = "link"
	RecordService = "service"
	RecordNode    = "node"
)

// Recordable is a fault that can describe itself for the Journal. Record is called
// before Inject and reads what Remove will put back (a service's replica count, a
// node's availability); Inject then uses what Record read.
type Recordable interface {
	Record(ctx context.Context) (FaultRecord, error)
}

// Record is one drill run's faults as the Journal keeps them.
type Record struct {
	Run   string `json:"run"`
	Drill string `json:"drill"`
	Env   string `json:"environment"`
	Site  string `json:"site,omitempty"`
	// Started is when the faults were recorded, just before the first was injected.
	Started time.Time `json:"started"`
	// Host, PID and Owner identify the drill's process ("user@host pid N").
	Host   string        `json:"host"`
	PID    int           `json:"pid"`
	Owner  string        `json:"owner"`
	Faults []FaultRecord `json:"faults"`
}

// Sites are the sites the record's faults touch, sorted.
func (r Record) Sites() []string {
	var out []string
	for _, f := range r.Faults {
		out = append(out, f.Sites...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Summary lists what the record's faults left in place, for a message.
func (r Record) Summary() string {
	var out []string
	for _, f := range r.Faults {
		out = append(out, f.What)
	}
	return strings.Join(out, ", ")
}

// Journal keeps a drill's faults where every later sitectl command can read them,
// outside the drill's process: Open before the first fault is injected, Close once
// every fault is removed. A record left behind is what `sitectl drill heal` removes.
type Journal interface {
	// Open records the faults; an error stops the drill before it injects anything.
	Open(ctx context.Context, r Record) error
	// Close stops keeping the record up to date and removes it, unless keep (a
	// fault is still in place: the record stays for `sitectl drill heal`).
	Close(ctx context.Context, keep bool) error
}

// Record describes the cut for the Journal.
func (f LinkFault) Record(context.Context) (FaultRecord, error) {
	return FaultRecord{Kind: RecordLink, What: "tunnel " + f.Link.Name() + " cut", Sites: []string{f.Link.A, f.Link.B}, Link: f.Link.Name()}, nil
}
