// Package pgdrill connects the drill to PostgreSQL with pgx: a Store per site (the
// drill table: create, insert, read back) and an Observer of the replication flows
// (subscription state and error counters at the subscriber, slot lag and publication
// membership at the publisher).
package pgdrill

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// Store is one site's database, reached through a pgx pool.
type Store struct {
	Site string
	Pool *pgxpool.Pool
}

// LazyStore is a Store whose pool is opened on first use, so an unreachable site
// shows in the drill's preflight instead of failing before it.
type LazyStore struct {
	Site string
	Get  PoolFunc
}

var _ drill.Store = LazyStore{}

func (l LazyStore) store(ctx context.Context) (*Store, error) {
	p, err := l.Get(ctx, l.Site)
	if err != nil {
		return nil, err
	}
	return &Store{Site: l.Site, Pool: p}, nil
}

// Ping opens the pool and checks the database answers.
func (l LazyStore) Ping(ctx context.Context) error {
	s, err := l.store(ctx)
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

// Prepare creates the drill table when missing.
func (l LazyStore) Prepare(ctx context.Context) error {
	s, err := l.store(ctx)
	if err != nil {
		return err
	}
	return s.Prepare(ctx)
}

// Insert writes one row.
func (l LazyStore) Insert(ctx context.Context, r drill.Row) error {
	s, err := l.store(ctx)
	if err != nil {
		return err
	}
	return s.Insert(ctx, r)
}

// Rows reads run's rows.
func (l LazyStore) Rows(ctx context.Context, run string) ([]drill.Row, error) {
	s, err := l.store(ctx)
	if err != nil {
		return nil, err
	}
	return s.Rows(ctx, run)
}

var _ drill.Store = (*Store)(nil)

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.Pool.Ping(ctx); err != nil {
		return fmt.Errorf("%s: database does not answer: %w", s.Site, err)
	}
	return nil
}

// Prepare creates the drill table when missing.
func (s *Store) Prepare(ctx context.Context) error {
	if _, err := s.Pool.Exec(ctx, drill.TableDDL); err != nil {
		return fmt.Errorf("%s: create table %s: %w", s.Site, drill.Table, err)
	}
	return nil
}

// Insert writes one row in its own transaction; nil means it committed.
func (s *Store) Insert(ctx context.Context, r drill.Row) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO `+drill.Table+` (site, id, run, seq) VALUES ($1, $2, $3, $4)`,
		r.Site, r.ID, r.Run, r.Seq)
	if err != nil {
		return fmt.Errorf("%s: insert %s: %w", s.Site, r.ID, err)
	}
	return nil
}

// Rows reads every drill row of run held at this site.
func (s *Store) Rows(ctx context.Context, run string) ([]drill.Row, error) {
	rows, err := s.Pool.Query(ctx, `SELECT site, id, run, seq FROM `+drill.Table+` WHERE run = $1`, run)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (drill.Row, error) {
		var d drill.Row
		err := r.Scan(&d.Site, &d.ID, &d.Run, &d.Seq)
		return d, err
	})
}

// Flow names one replication flow and where its objects live: the subscription at
// To, and the publication and slot at From.
type Flow struct {
	From, To     string
	Subscription string
	Publication  string
	Slot         string
}

// TopologyFlows names the objects of every replication flow of the topology the way
// sitectl's replication creates them for sites never rebuilt: publication,
// subscription and slot all named sitectl_<from>_to_<to>.
func TopologyFlows(topo *sites.Topology) []Flow { return TopologyFlowsAt(topo, nil) }

// TopologyFlowsAt names them for sites of the given generations (site → generation;
// a site missing is generation 0) with replication/postgres's own rule
// (postgres.Flow.SlotName): once a site of a flow was rebuilt, the flow's
// subscription and slot are sitectl_<from>_to_<to>_g<from's>_<to's>; the publication
// keeps sitectl_<from>_to_<to>.
func TopologyFlowsAt(topo *sites.Topology, gens map[string]int64) []Flow {
	out := make([]Flow, 0, len(topo.Flows))
	for _, f := range topo.Flows {
		fl := postgres.Flow{From: f.From, To: f.To, Filter: f.Filter}
		slot := fl.SlotName(gens[f.From], gens[f.To])
		out = append(out, Flow{From: f.From, To: f.To, Subscription: slot, Publication: fl.Name(), Slot: slot})
	}
	return out
}

// LiveObserver observes the topology's flows under the names the sites' databases
// give them: the generations (public.sitectl_generation) are read again on every
// Flows call, so a drill run after a site was rebuilt, or across a rebuild, sees
// the rebuilt site's generation-named subscriptions and slots.
func LiveObserver(topo *sites.Topology, pool PoolFunc) *Observer {
	return &Observer{Specs: TopologyFlows(topo), Pool: pool, Topo: topo}
}

// PoolFunc returns the pool of a site's database.
type PoolFunc func(ctx context.Context, site string) (*pgxpool.Pool, error)

// Pools makes a PoolFunc of a fixed map.
func Pools(m map[string]*pgxpool.Pool) PoolFunc {
	return func(_ context.Context, site string) (*pgxpool.Pool, error) {
		if p := m[site]; p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("no connection to %s's database", site)
	}
}

// Observer reads the state of replication flows from the sites' databases.
type Observer struct {
	Specs []Flow
	Pool  PoolFunc
	// Topo, when set, names the flows at the generations the sites' databases
	// record (read on every Flows call; Specs are then ignored): see LiveObserver.
	Topo *sites.Topology

	mu   sync.Mutex
	gens map[string]int64 // the highest generation seen per site
}

// specs are the flows to read: Specs, or the topology's at the generations the
// answering databases record. A site that does not answer (a cut) keeps the
// generation seen before; generations only grow.
func (o *Observer) specs(ctx context.Context) []Flow {
	if o.Topo == nil {
		return o.Specs
	}
	read := postgres.SiteGenerations(ctx, o.Pool, o.Topo.SiteNames())
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gens == nil {
		o.gens = map[string]int64{}
	}
	for s, g := range read {
		o.gens[s] = max(o.gens[s], g)
	}
	return TopologyFlowsAt(o.Topo, o.gens)
}

var _ drill.Observer = (*Observer)(nil)

// Flows reads every flow's state. A site that does not answer makes its flows
// "down" rather than failing the read: that is what a cut looks like from here.
func (o *Observer) Flows(ctx context.Context) ([]drill.FlowState, error) {
	specs := o.specs(ctx)
	out := make([]drill.FlowState, 0, len(specs))
	var errs []error
	for _, f := range specs {
		st, err := o.flow(ctx, f)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, st)
	}
	if len(errs) == len(specs) && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (o *Observer) flow(ctx context.Context, f Flow) (drill.FlowState, error) {
	st := drill.FlowState{From: f.From, To: f.To, State: drill.StateDown}
	sub, err := o.Pool(ctx, f.To)
	if err != nil {
		return st, fmt.Errorf("flow %s→%s: %w", f.From, f.To, err)
	}
	pub, err := o.Pool(ctx, f.From)
	if err != nil {
		return st, fmt.Errorf("flow %s→%s: %w", f.From, f.To, err)
	}
	var worker bool
	err = sub.QueryRow(ctx, `
SELECT s.subenabled, st.pid IS NOT NULL,
       COALESCE(ss.apply_error_count, 0), COALESCE(ss.sync_error_count, 0)
FROM pg_subscription s
LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
LEFT JOIN pg_stat_subscription_stats ss ON ss.subid = s.oid
WHERE s.subname = $1`, f.Subscription).Scan(&st.Enabled, &worker, &st.ApplyErrors, &st.SyncErrors)
	if errors.Is(err, pgx.ErrNoRows) {
		st.LastError = "no subscription " + f.Subscription + " at " + f.To
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("flow %s→%s: read subscription at %s: %w", f.From, f.To, f.To, err)
	}
	var active bool
	var walStatus, sender string
	var lagSecs float64
	err = pub.QueryRow(ctx, `
SELECT r.active, COALESCE(r.wal_status, ''),
       COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), r.confirmed_flush_lsn), 0)::bigint,
       COALESCE(w.state, ''), COALESCE(EXTRACT(EPOCH FROM w.replay_lag), 0)::float8,
       EXISTS (SELECT 1 FROM pg_publication_tables t WHERE t.pubname = $2 AND t.tablename = $3)
FROM pg_replication_slots r
LEFT JOIN pg_stat_replication w ON w.pid = r.active_pid
WHERE r.slot_name = $1`, f.Slot, f.Publication, drill.Table).Scan(&active, &walStatus, &st.LagBytes, &sender, &lagSecs, &st.Published)
	if errors.Is(err, pgx.ErrNoRows) {
		st.LastError = "no replication slot " + f.Slot + " at " + f.From
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("flow %s→%s: read slot at %s: %w", f.From, f.To, f.From, err)
	}
	st.LagSeconds = lagSecs
	switch {
	case !st.Enabled:
		st.State = drill.StateDisabled
	case !worker || !active:
		st.State = drill.StateDown
	case sender == "streaming":
		st.State = drill.StateStreaming
	case sender == "catchup" || sender == "startup":
		st.State = drill.StateCatchup
	}
	if walStatus == "lost" {
		st.LastError = "slot " + f.Slot + " lost its WAL (wal_status=lost): resync the subscription"
	}
	return st, nil
}

// SubscriptionCutter is NOT a network cut: it stands in for one by disabling the
// subscriptions that cross a link (ALTER SUBSCRIPTION ... DISABLE) and enabling them
// again to heal. Use it only where no tunnel can be cut (a single host without the
// lab); the network, the tunnels and the walsender timeouts are not exercised.
type SubscriptionCutter struct {
	Flows []Flow
	Pool  PoolFunc
}

// Cut disables the subscriptions of every flow between the link's two sites.
func (c *SubscriptionCutter) Cut(ctx context.Context, link sites.Link) error {
	return c.set(ctx, link.A, link.B, false)
}

// Heal enables them again.
func (c *SubscriptionCutter) Heal(ctx context.Context, link sites.Link) error {
	return c.set(ctx, link.A, link.B, true)
}

func (c *SubscriptionCutter) set(ctx context.Context, a, b string, enable bool) error {
	verb := "DISABLE"
	if enable {
		verb = "ENABLE"
	}
	for _, f := range c.Flows {
		if (f.From != a || f.To != b) && (f.From != b || f.To != a) {
			continue
		}
		pool, err := c.Pool(ctx, f.To)
		if err != nil {
			return err
		}
		if _, err := pool.Exec(ctx, fmt.Sprintf("ALTER SUBSCRIPTION %s %s", pgx.Identifier{f.Subscription}.Sanitize(), verb)); err != nil {
			return fmt.Errorf("%s subscription %s at %s: %w", verb, f.Subscription, f.To, err)
		}
	}
	return nil
}
