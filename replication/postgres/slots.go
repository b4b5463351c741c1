package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// testHookSlotMade, when set (tests), runs between a subscription's slot and its
// CREATE SUBSCRIPTION.
var testHookSlotMade func(slot string)

// closeSession closes a pooled connection's session (its settings and locks go with
// it); the pool drops the connection on Release.
func closeSession(ctx context.Context, conn *pgxpool.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Conn().Close(cctx)
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
