package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// Options tune planning and applying.
type Options struct {
	// Wait bounds how long a subscription step waits for its publisher's
	// publication (default 2m): when sites deploy in parallel, the publisher's
	// publication step may still be running.
	Wait time.Duration
	// PeerWait is how long Plan keeps retrying sites it cannot reach before it gives
	// up (default 0: report at once, right for `sitectl plan`). A deploy that starts
	// every site's database in parallel sets it, so one site's replication plan does
	// not fail only because another site's database is still starting.
	PeerWait time.Duration
	// Starting names the sites whose databases this deploy brings up. PeerWait only
	// applies while every unreachable site is one of them: a site outside the deploy
	// that does not answer will not start answering by waiting, so Plan reports it
	// at once. Nil means every site.
	Starting []string
}

// mayStart reports whether every site in errs is one whose database this deploy
// starts (so waiting for it makes sense).
func (o Options) mayStart(errs map[string]error) bool {
	if o.Starting == nil {
		return true
	}
	for s := range errs {
		if !slices.Contains(o.Starting, s) {
			return false
		}
	}
	return true
}

// Planned is the replication plan of every site.
type Planned struct {
	Changes map[string][]Change `json:"-"`
	// Errors holds, per site, why it cannot be planned. When any site has one, no
	// site gets changes: replication objects span sites, and a half-made flow is
	// worse than none.
	Errors map[string]error `json:"-"`
	sess   *Session
	opts   Options
}

// Steps returns the site's plan steps, in apply order, with their Apply functions.
func (p *Planned) Steps(site string) []plan.Step {
	var out []plan.Step
	for _, c := range p.Changes[site] {
		out = append(out, c.Step)
	}
	return out
}

// Count is the number of changes over every site.
func (p *Planned) Count() int {
	n := 0
	for _, cs := range p.Changes {
		n += len(cs)
	}
	return n
}

// Err joins the sites' planning errors, sorted by site.
func (p *Planned) Err() error {
	var errs []error
	for _, s := range sortedKeys(p.Errors) {
		errs = append(errs, p.Errors[s])
	}
	return errors.Join(errs...)
}

// Plan reads every replicating site (all of them, before anything is decided) and
// computes the steps that bring each to the topology's desired state. A site that
// cannot be reached or whose tables cannot replicate stops the whole plan: every
// site's entry in Errors says which site and why.
func Plan(ctx context.Context, topo *sites.Topology, sess *Session, opts Options) (*Planned, error) {
	if opts.Wait == 0 {
		opts.Wait = 2 * time.Minute
	}
	p := &Planned{Changes: map[string][]Change{}, Errors: map[string]error{}, sess: sess, opts: opts}
	d, err := Desire(topo)
	if err != nil {
		return nil, err
	}
	if len(d.SiteNames()) == 0 {
		return p, nil
	}
	lives, errs := readAll(ctx, sess, d)
	for deadline := time.Now().Add(opts.PeerWait); len(errs) > 0 && opts.mayStart(errs) && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(retryAfter):
		}
		lives, errs = readAll(ctx, sess, d)
	}
	ex := Extras{Copies: map[string]map[string]int64{}, Conflicts: map[string]*Conflict{}, Schema: map[string]string{}}
	for _, name := range sortedKeys(lives) {
		if err := checkSite(ctx, topo, sess, d, lives[name], ex); err != nil {
			errs[name] = err
		}
	}
	if len(errs) == 0 {
		if err := readExtras(ctx, sess, d, lives, ex); err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		var bad, absent []string
		for _, s := range sortedKeys(errs) {
			bad = append(bad, fmt.Sprintf("%s (%v)", s, errs[s]))
			if opts.Starting != nil && !slices.Contains(opts.Starting, s) {
				absent = append(absent, s)
			}
		}
		fix := "fix that site, then re-run the deploy"
		if len(absent) > 0 {
			fix = fmt.Sprintf("not part of this deploy: %s; deploy it too (--site %s, or --all), then replication is set up", strings.Join(absent, ", "), strings.Join(absent, " --site "))
		}
		for _, s := range d.SiteNames() {
			if e := errs[s]; e != nil {
				p.Errors[s] = e
			} else {
				p.Errors[s] = peerError{fmt.Errorf("replication not planned: cannot plan %s; nothing is changed on any site until every replicating site's database answers: %s", strings.Join(bad, "; "), fix)}
			}
		}
		return p, nil
	}
	p.Changes = Diff(d, lives, ex)
	for site, cs := range p.Changes {
		for i := range cs {
			op := cs[i].Op
			if op.Kind == OpBlocked {
				continue
			}
			cs[i].Step.Apply = func(ctx context.Context) error { return p.apply(ctx, topo, op) }
		}
		p.Changes[site] = cs
	}
	return p, nil
}

// checkSite checks the server settings and the replicated tables, and decides
// whether the schema file must be applied.
func checkSite(ctx context.Context, topo *sites.Topology, sess *Session, d *Desired, live *Live, ex Extras) error {
	site := topo.Site(live.Site)
	if live.Version < 150000 {
		return fmt.Errorf("%s: PostgreSQL %d is too old: row filters and disable_on_error need 15 or later", live.Site, live.Version/10000)
	}
	if wl := live.Settings["wal_level"]; wl != "logical" {
		return fmt.Errorf("%s: wal_level is %s; replication needs logical: redeploy the postgres stack (it passes postgres.ServerSettings) and restart the server", live.Site, wl)
	}
	schema, err := LoadSchema(topo, site)
	if err != nil {
		return err
	}
	var missing []string
	for _, t := range d.Tables {
		if live.Tables[t] == nil {
			missing = append(missing, t)
		}
	}
	why := ""
	switch {
	case schema == nil && len(missing) > 0:
		return fmt.Errorf("%s: tables %s do not exist and no postgres.schema_file creates them", live.Site, strings.Join(missing, ", "))
	case schema == nil:
	case len(missing) > 0:
		why = fmt.Sprintf("apply %s (sha256 %.12s): creates %s", site.Postgres.SchemaFile, schema.SHA256, strings.Join(missing, ", "))
	case live.SchemaSHA != schema.SHA256:
		why = fmt.Sprintf("apply %s (sha256 %.12s → %.12s)", site.Postgres.SchemaFile, orNone(live.SchemaSHA), schema.SHA256)
	}
	if why != "" {
		pool, err := sess.Pool(ctx, live.Site)
		if err != nil {
			return err
		}
		if err := schema.DryRun(ctx, pool, d.Tables); errors.As(err, new(lockWaitError)) {
			return fmt.Errorf("%s: %w", live.Site, err)
		} else if err != nil {
			return fmt.Errorf("%s: %w (tried in a transaction that was rolled back; fix %s)", live.Site, err, site.Postgres.SchemaFile)
		}
		ex.Schema[live.Site] = why
		return nil
	}
	var errs []error
	for _, t := range d.Tables {
		if err := live.Tables[t].Check(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", live.Site, errors.Join(errs...))
	}
	return nil
}

// readExtras reads what the diff needs beyond the catalogs.
func readExtras(ctx context.Context, sess *Session, d *Desired, lives map[string]*Live, ex Extras) error {
	for _, site := range sortedKeys(d.Subscriptions) {
		for i := range d.Subscriptions[site] {
			s := &d.Subscriptions[site][i]
			live := lives[site].Subscriptions[s.Name]
			subPool, err := sess.Pool(ctx, site)
			if err != nil {
				return err
			}
			// Earlier copies of rows the subscription is about to copy: every table of a
			// new subscription, the added tables of an existing one.
			slot := lives[s.Flow.From].Slots[s.Name]
			recreate := live != nil && (slot == nil || slot.WALStatus == "lost")
			counts := map[string]int64{}
			for _, t := range s.Tables {
				if lives[site].Tables[t] == nil {
					continue
				}
				if _, has := live.tableState(t); has && !recreate {
					continue
				}
				var n int64
				if err := subPool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", quoteTable(t), s.Flow.Filter)).Scan(&n); err != nil {
					return fmt.Errorf("%s: count earlier copies in %s: %w", site, t, err)
				}
				counts[t] = n
			}
			ex.Copies[s.Name] = counts
			if live == nil || live.Enabled {
				continue
			}
			pubPool, err := sess.Pool(ctx, s.Flow.From)
			if err != nil {
				return err
			}
			if lives[s.Flow.From].Slots[s.Name] == nil {
				continue
			}
			pend, err := FindConflict(ctx, pubPool, subPool, s, live.OID)
			if err != nil {
				// Not knowing is not fatal: enabling a subscription whose conflict is
				// still there only disables it again, and status tells why.
				continue
			}
			if pend != nil && pend.Conflict != nil {
				ex.Conflicts[s.Name] = pend.Conflict
			}
		}
	}
	return nil
}

// Apply applies every site's changes phase by phase across the sites: the schema
// everywhere, then publications, then subscriptions, then removals. The first
// error stops it.
func (p *Planned) Apply(ctx context.Context, pr *progress.Printer) error {
	if err := p.Err(); err != nil {
		return err
	}
	var all []Change
	for _, site := range sortedKeys(p.Changes) {
		all = append(all, p.Changes[site]...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Op.Phase < all[j].Op.Phase })
	for _, c := range all {
		if c.Step.Apply == nil {
			continue
		}
		done := pr.Step("%s: %s", c.Step.Site, c.Step)
		err := c.Step.Apply(ctx)
		done(err)
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *Planned) apply(ctx context.Context, topo *sites.Topology, op Op) error {
	pool, err := p.sess.Pool(ctx, op.Site)
	if err != nil {
		return err
	}
	what := strings.ReplaceAll(string(op.Kind), "-", " ")
	if op.Object != "" {
		what += " " + op.Object
	} else if op.Publication != nil {
		what += " " + op.Publication.Name
	} else if op.Subscription != nil {
		what += " " + op.Subscription.Name
	}
	fail := func(err error) error { return fmt.Errorf("%s: %s: %w", op.Site, what, err) }
	switch op.Kind {
	case OpSchema:
		schema, err := LoadSchema(topo, topo.Site(op.Site))
		if err != nil {
			return fail(err)
		}
		d, err := Desire(topo)
		if err != nil {
			return fail(err)
		}
		if err := schema.Apply(ctx, pool, d.Tables); err != nil {
			return fail(err)
		}
		return nil
	case OpDropSlot:
		if err := p.dropStaleSlot(ctx, op); err != nil {
			return fail(err)
		}
		return nil
	case OpCreateSubscription, OpAlterSubscription:
		if err := p.waitPublisher(ctx, op); err != nil {
			return fail(err)
		}
	}
	if err := execAll(ctx, pool, op.Statements); err != nil {
		return fail(err)
	}
	if op.Kind == OpRecreateSubscription {
		// Dropped above; now as a new one (its lost slot is dropped below).
		if err := p.waitPublisher(ctx, op); err != nil {
			return fail(err)
		}
	}
	s := op.Subscription
	if s == nil {
		return nil
	}
	q := quoteIdent(s.Name)
	{
		for _, t := range sortedKeys(op.ClearCopies) {
			if _, err := pool.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s", quoteTable(t), s.Flow.Filter)); err != nil {
				return fail(fmt.Errorf("clear earlier copies in %s: %w", t, err))
			}
		}
	}
	create := op.Kind == OpCreateSubscription || op.Kind == OpRecreateSubscription
	if create || op.SetConnection {
		conninfo, err := s.Conn.Render()
		if err != nil {
			return fail(err)
		}
		stmt := fmt.Sprintf("ALTER SUBSCRIPTION %s CONNECTION %s", q, quoteLiteral(conninfo))
		made := false
		if create {
			// From the slot to the committed subscription, under the slot's lock on
			// the publisher: the publisher's own deploy, dropping the slot it finds
			// without a subscription, would otherwise drop the one made here.
			lk, unlock, err := p.lockSlot(ctx, s.Flow.From, s.Name, false)
			if err != nil {
				return fail(err)
			}
			defer unlock()
			if has, err := hasSubscription(ctx, pool, s.Name); err != nil {
				return fail(err)
			} else if has {
				return nil // made meanwhile (the plan is older): the next plan checks it
			}
			// A slot of this name left by an earlier subscription (lost, or whose
			// subscription was dropped without it) is this subscription's to replace.
			if err := dropOldSlot(ctx, lk, s); err != nil {
				return fail(err)
			}
			if made, err = createSlot(ctx, lk, s); err != nil {
				return fail(err)
			}
			if testHookSlotMade != nil {
				testHookSlotMade(s.Name)
			}
			stmt = fmt.Sprintf("CREATE SUBSCRIPTION %s CONNECTION %s PUBLICATION %s WITH (disable_on_error = true, copy_data = true, create_slot = false, slot_name = %s, enabled = true)",
				q, quoteLiteral(conninfo), quoteIdent(s.Publication), quoteLiteral(s.Name))
		}
		if err := execLimited(ctx, pool, stmt, true, s.Flow.From); err != nil {
			// Not after the client's backstop: the server may still commit it.
			if made && !errors.Is(err, errNoAnswer) {
				// Leave no slot holding WAL for a subscription that does not exist.
				p.dropNewSlot(ctx, s, pool)
			}
			return fail(err)
		}
	}
	if op.Enable {
		if _, err := pool.Exec(ctx, "ALTER SUBSCRIPTION "+q+" ENABLE", pgx.QueryExecModeSimpleProtocol); err != nil {
			return fail(err)
		}
	}
	if op.Refresh {
		if err := execLimited(ctx, pool, "ALTER SUBSCRIPTION "+q+" REFRESH PUBLICATION WITH (copy_data = true)", false, s.Flow.From); err != nil {
			return fail(err)
		}
	}
	return nil
}

// SlotWait bounds the creation of a subscription's slot on its publisher, which
// waits for every transaction running there to end.
var SlotWait = 2 * time.Minute

// createSlot makes the subscription's logical slot on the publisher by itself,
// before CREATE SUBSCRIPTION (create_slot = false). With create_slot = true the
// subscriber makes it from inside its own transaction, and creating a slot waits
// for every transaction running on the publisher: two sites subscribing to each
// other at the same moment (cloud and a spoke deploying in parallel) then wait for
// each other for ever. PostgreSQL's documentation gives the same remedy for a
// subscription to its own cluster. The caller holds the slot's lock (lockSlot) and
// made it on that connection; a slot of that name there all the same (made outside
// sitectl) is used as it is.
func createSlot(ctx context.Context, publisher execer, s *Subscription) (made bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, SlotWait)
	defer cancel()
	_, err = publisher.Exec(wctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, s.Name)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42710": // duplicate_object
		return false, nil
	case err != nil && wctx.Err() != nil && ctx.Err() == nil:
		return false, fmt.Errorf("create slot %s on %s: waited %s for the transactions running there to end (pg_stat_activity on %s lists them)", s.Name, s.Flow.From, SlotWait, s.Flow.From)
	case err != nil:
		return false, fmt.Errorf("create slot %s on %s: %w", s.Name, s.Flow.From, err)
	}
	return true, nil
}

// dropNewSlot drops, best effort, the slot createSlot made when CREATE SUBSCRIPTION
// then failed, unless the subscriber has the subscription after all (the error was
// the connection's, after the server committed); a slot left behind is dropped by
// the publisher's next deploy.
func (p *Planned) dropNewSlot(ctx context.Context, s *Subscription, subscriber *pgxpool.Pool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if has, err := hasSubscription(ctx, subscriber, s.Name); err != nil || has {
		return
	}
	if pool, err := p.sess.Pool(ctx, s.Flow.From); err == nil {
		_ = dropSlot(ctx, pool, s.Name)
	}
}

// hasSubscription reports whether the subscriber has a subscription of that name.
func hasSubscription(ctx context.Context, subscriber *pgxpool.Pool, name string) (bool, error) {
	var n int
	err := subscriber.QueryRow(ctx, `SELECT count(*) FROM pg_subscription WHERE subname = $1`, name).Scan(&n)
	return n > 0, err
}

// PublisherTimeout bounds a statement during which the subscriber's server itself
// talks to the publisher: CREATE SUBSCRIPTION and ALTER SUBSCRIPTION ... REFRESH
// PUBLICATION read the publication's tables there. libpq's connect_timeout bounds
// only the connection; a link that goes silent after it (a partition that drops
// packets) would hold the statement, and the deploy, until TCP gives up, many
// minutes later. The bound is the server's statement_timeout, so the server cancels
// the statement itself and keeps nothing of it.
var PublisherTimeout = 2 * time.Minute

// errNoAnswer: the subscriber's own server stopped answering mid-statement, so what
// the statement did is unknown.
var errNoAnswer = errors.New("the subscriber's PostgreSQL did not answer")

// execLimited runs stmt, which makes the subscriber's server talk to publisher, on
// one connection under PublisherTimeout. With secret (the statement holds a
// password) the server's statement logging is off for it, so the server log never
// records it (by default a failing statement is logged with its text), and the
// error never carries the SQL.
func execLimited(parent context.Context, pool *pgxpool.Pool, stmt string, secret bool, publisher string) error {
	// The client's own bound, past the server's: for a server that stopped answering.
	ctx, cancel := context.WithTimeout(parent, PublisherTimeout+15*time.Second)
	defer cancel()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	set := fmt.Sprintf("SET statement_timeout = %d", PublisherTimeout.Milliseconds())
	reset := "RESET statement_timeout"
	if secret {
		set += "; SET log_statement = 'none'; SET log_min_error_statement = 'panic'; SET log_min_duration_statement = -1"
		reset += "; RESET log_statement; RESET log_min_error_statement; RESET log_min_duration_statement"
	}
	if _, err := conn.Exec(ctx, set, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol)
	if _, rerr := conn.Exec(ctx, reset, pgx.QueryExecModeSimpleProtocol); rerr != nil {
		closeSession(ctx, conn) // not back to the pool with these settings
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == "57014" && parent.Err() == nil:
		// query_canceled: pgx sends no cancel request, so this is statement_timeout.
		return fmt.Errorf("no answer from %s's PostgreSQL within %s: the link to it went silent (a partition, or its tunnel is down: `sitectl tunnel check`), or the statement waited on a lock here; it was cancelled and kept nothing: re-run sitectl deploy once %s answers", publisher, PublisherTimeout, publisher)
	case ctx.Err() != nil && parent.Err() == nil:
		return fmt.Errorf("%w within %s: is it overloaded or cut off? re-run sitectl deploy once it answers (its outcome is unknown: the next plan shows it)", errNoAnswer, PublisherTimeout+15*time.Second)
	case secret:
		return redactErr(err)
	}
	return err
}

func execAll(ctx context.Context, pool *pgxpool.Pool, stmts []string) error {
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
	}
	return nil
}

// waitPublisher waits until the publisher's publication carries the subscription's
// tables.
func (p *Planned) waitPublisher(ctx context.Context, op Op) error {
	s := op.Subscription
	ctx, cancel := context.WithTimeout(ctx, p.opts.Wait)
	defer cancel()
	var last error
	for {
		last = p.publisherReady(ctx, s)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited %s for %s: %w (deploy %s: its publications come before subscriptions)", p.opts.Wait, s.Flow.From, last, s.Flow.From)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (p *Planned) publisherReady(ctx context.Context, s *Subscription) error {
	pool, err := p.sess.Pool(ctx, s.Flow.From)
	if err != nil {
		return err
	}
	rows, err := pool.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1`, s.Publication)
	if err != nil {
		return err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(s.Tables, ",") {
		return fmt.Errorf("publication %s carries [%s], not yet [%s]", s.Publication, strings.Join(got, ", "), strings.Join(s.Tables, ", "))
	}
	return nil
}

// tableState is the table's sync state in the subscription (nil-safe).
func (s *LiveSubscription) tableState(t string) (string, bool) {
	if s == nil {
		return "", false
	}
	st, ok := s.Tables[t]
	return st, ok
}

// testHookSlotMade, when set (tests), runs between a subscription's slot and its
// CREATE SUBSCRIPTION.
var testHookSlotMade func(slot string)

// closeSession closes a pooled connection's session (its settings and locks go with
// it); the pool drops the connection on Release.
func closeSession(ctx context.Context, conn *pgxpool.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	conn.Conn().Close(cctx)
}

// execer is a pool or one of its connections.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lockSlot takes, on the publisher, the session advisory lock of a slot name, which
// everything that makes or drops that slot holds: the subscriber's creation (its
// slot, then CREATE SUBSCRIPTION, committed) and the publisher's drop of a slot it
// finds without a subscription. Without it the publisher could drop a slot in the
// moment between the two (sites deploying in parallel). It returns the locked
// connection (idle, in no transaction, so a slot can be made on it) and the func
// that releases both. With try, a lock held elsewhere returns a nil connection at
// once; else the wait is bounded by SlotWait.
func (p *Planned) lockSlot(ctx context.Context, publisher, slot string, try bool) (*pgxpool.Conn, func(), error) {
	pool, err := p.sess.Pool(ctx, publisher)
	if err != nil {
		return nil, nil, err
	}
	actx, cancel := context.WithTimeout(ctx, SlotWait)
	conn, err := pool.Acquire(actx)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("lock slot %s on %s: %w", slot, publisher, err)
	}
	closeConn := func() { // a closed session holds no lock
		closeSession(ctx, conn)
		conn.Release()
	}
	got := true
	if try {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('sitectl.slot'), hashtext($1))`, slot).Scan(&got)
	} else {
		_, err = conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d", SlotWait.Milliseconds()))
		if err == nil {
			_, err = conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('sitectl.slot'), hashtext($1))`, slot)
		}
		if err == nil {
			_, err = conn.Exec(ctx, "RESET lock_timeout")
		}
	}
	if err != nil {
		closeConn()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			return nil, nil, fmt.Errorf("slot %s on %s: another deploy held it for %s (pg_locks on %s shows the advisory lock's holder)", slot, publisher, SlotWait, publisher)
		}
		return nil, nil, fmt.Errorf("lock slot %s on %s: %w", slot, publisher, err)
	}
	if !got {
		conn.Release()
		return nil, func() {}, nil
	}
	return conn, func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var released bool
		if err := conn.QueryRow(uctx, `SELECT pg_advisory_unlock(hashtext('sitectl.slot'), hashtext($1))`, slot).Scan(&released); err != nil || !released {
			closeConn()
			return
		}
		conn.Release()
	}, nil
}

// oldSlotWait is how long a leftover slot's walsender may take to stop by itself
// (its subscription was just dropped) before it counts as someone else's.
const oldSlotWait = 5 * time.Second

// dropOldSlot drops, on the publisher, a slot of the subscription's name left by an
// earlier subscription (lost, or whose subscription was dropped without it): the
// caller holds the slot's lock and found no such subscription at the subscriber. A
// slot still streaming to someone after oldSlotWait is refused, not taken over.
func dropOldSlot(ctx context.Context, publisher execer, s *Subscription) error {
	deadline := time.Now().Add(oldSlotWait)
	for {
		var active bool
		var walStatus *string
		err := publisher.QueryRow(ctx, `SELECT active, wal_status FROM pg_replication_slots WHERE slot_name = $1`, s.Name).Scan(&active, &walStatus)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		lost := walStatus != nil && *walStatus == "lost"
		if !active || lost {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slot %s on %s still streams to a subscriber, though %s has no subscription %s: another cluster subscribes under this name; find it with pg_stat_replication on %s", s.Name, s.Flow.From, s.Flow.To, s.Name, s.Flow.From)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := dropSlot(ctx, publisher, s.Name); err != nil {
		return fmt.Errorf("drop the old slot %s on %s: %w", s.Name, s.Flow.From, err)
	}
	return nil
}

// dropStaleSlot is the publisher's drop of a slot the plan found without a
// subscription, or lost. A subscriber making the subscription holds the slot's lock:
// then the slot is not stale and is left. Else, under the lock, it looks again, and
// leaves a slot whose subscription exists by now unless the slot is lost.
func (p *Planned) dropStaleSlot(ctx context.Context, op Op) error {
	lk, unlock, err := p.lockSlot(ctx, op.Site, op.Object, true)
	if err != nil {
		return err
	}
	defer unlock()
	if lk == nil {
		return nil // its subscriber is making the subscription right now
	}
	var walStatus *string
	err = lk.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, op.Object).Scan(&walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // gone already (its subscriber replaced it, or dropped it)
	} else if err != nil {
		return err
	}
	lost := walStatus != nil && *walStatus == "lost"
	if !lost && op.Subscriber != "" {
		sub, err := p.sess.Pool(ctx, op.Subscriber)
		if err != nil {
			return err
		}
		if has, err := hasSubscription(ctx, sub, op.Object); err != nil {
			return err
		} else if has {
			return nil // its subscription was created meanwhile: not stale any more
		}
	}
	return dropSlot(ctx, lk, op.Object)
}

// dropSlot stops the slot's walsender, if any, and drops it.
func dropSlot(ctx context.Context, pool execer, name string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, name); err != nil {
			return err
		}
		_, err := pool.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// redactErr keeps a server error's message but drops anything that could echo a
// connection string.
func redactErr(err error) error {
	return errors.New(Redact(err.Error()))
}
