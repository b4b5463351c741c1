package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/sites"
)

// apply runs one op on its site: the schema, a stale slot's drop, or the op's
// statements and then its subscription's connection, enabling and refresh.
func (p *Planned) apply(ctx context.Context, topo *sites.Topology, op Op) error {
	pool, err := p.sess.Pool(ctx, op.Site)
	if err != nil {
		return err
	}
	what := opWhat(op)
	fail := func(err error) error { return fmt.Errorf("%s: %s: %w", op.Site, what, err) }
	switch op.Kind {
	case OpSchema:
		if err := applySchema(ctx, topo, op.Site, pool); err != nil {
			return fail(err)
		}
		return nil
	case OpAppRole:
		site := topo.Site(op.Site)
		pw, err := site.Postgres.AppPassword.Resolve()
		if err == nil {
			err = ApplyRole(ctx, pool, site.Postgres.AppUser, site.Postgres.User, pw)
		}
		if err != nil {
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
	if op.Subscription == nil {
		return nil
	}
	unlock, done, err := p.applySubscription(ctx, pool, op)
	// The slot's lock is held to the end of the op, past enabling and refresh.
	defer unlock()
	if err != nil || done {
		return wrapFail(fail, err)
	}
	return wrapFail(fail, p.enableRefresh(ctx, pool, op))
}

// wrapFail is fail(err), or nil for no error.
func wrapFail(fail func(error) error, err error) error {
	if err == nil {
		return nil
	}
	return fail(err)
}

// opWhat names an op in errors: its kind and the object it is about.
func opWhat(op Op) string {
	what := strings.ReplaceAll(string(op.Kind), "-", " ")
	if op.Object != "" {
		what += " " + op.Object
	} else if op.Publication != nil {
		what += " " + op.Publication.Name
	} else if op.Subscription != nil {
		what += " " + op.Subscription.Name
	}
	return what
}

// applySchema makes the site's schema the desired one.
func applySchema(ctx context.Context, topo *sites.Topology, site string, pool *pgxpool.Pool) error {
	schema, err := LoadSchema(topo, topo.Site(site))
	if err != nil {
		return err
	}
	d, err := Build(topo)
	if err != nil {
		return err
	}
	return schema.Apply(ctx, pool, d.Tables)
}

// applySubscription clears the subscriber's earlier copies and creates the op's
// subscription or sets its connection. It returns the func that releases the
// slot's lock (a no-op when none was taken), and done when the op has nothing left
// to do (the subscription was made meanwhile).
func (p *Planned) applySubscription(ctx context.Context, pool *pgxpool.Pool, op Op) (unlock func(), done bool, err error) {
	s := op.Subscription
	unlock = func() {}
	for _, t := range slices.Sorted(maps.Keys(op.ClearCopies)) {
		if _, err := pool.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s", quoteTable(t), s.Flow.Filter)); err != nil {
			return unlock, false, fmt.Errorf("clear earlier copies in %s: %w", t, err)
		}
	}
	create := op.Kind == OpCreateSubscription || op.Kind == OpRecreateSubscription
	if !create && !op.SetConnection {
		return unlock, false, nil
	}
	conninfo, err := s.Conn.Render()
	if err != nil {
		return unlock, false, err
	}
	q := quoteIdent(s.Name)
	stmt := fmt.Sprintf("ALTER SUBSCRIPTION %s CONNECTION %s", q, quoteLiteral(conninfo))
	made := false
	if create {
		// From the slot to the committed subscription, under the slot's lock on
		// the publisher: the publisher's own deploy, dropping the slot it finds
		// without a subscription, would otherwise drop the one made here.
		lk, release, err := p.lockSlot(ctx, s.Flow.From, s.Name, false)
		if err != nil {
			return unlock, false, err
		}
		unlock = release
		if made, done, err = prepareSlot(ctx, lk, pool, s); err != nil || done {
			return unlock, done, err
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
		return unlock, false, err
	}
	return unlock, false, nil
}

// prepareSlot makes the new subscription's slot on the publisher (lk holds its
// lock), replacing a slot of that name an earlier subscription left. done: the
// subscriber has the subscription already (the plan is older), nothing to do.
func prepareSlot(ctx context.Context, lk execer, subscriber *pgxpool.Pool, s *Subscription) (made, done bool, err error) {
	if has, err := hasSubscription(ctx, subscriber, s.Name); err != nil {
		return false, false, err
	} else if has {
		return false, true, nil // made meanwhile (the plan is older): the next plan checks it
	}
	// A slot of this name left by an earlier subscription (lost, or whose
	// subscription was dropped without it) is this subscription's to replace.
	if err := dropOldSlot(ctx, lk, s); err != nil {
		return false, false, err
	}
	if made, err = createSlot(ctx, lk, s); err != nil {
		return false, false, err
	}
	if testHookSlotMade != nil {
		testHookSlotMade(s.Name)
	}
	return made, false, nil
}

// enableRefresh enables the op's subscription and refreshes its publication, as
// the op asks.
func (p *Planned) enableRefresh(ctx context.Context, pool *pgxpool.Pool, op Op) error {
	s := op.Subscription
	q := quoteIdent(s.Name)
	if op.Enable {
		if _, err := pool.Exec(ctx, "ALTER SUBSCRIPTION "+q+" ENABLE", pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
	}
	if op.Refresh {
		if err := execLimited(ctx, pool, "ALTER SUBSCRIPTION "+q+" REFRESH PUBLICATION WITH (copy_data = true)", false, s.Flow.From); err != nil {
			return err
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
