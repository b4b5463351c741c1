package backup

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// nudgeEvery is how often closeSegment commits an empty transaction at the live
// database while Barman waits for the closed WAL segment.
const nudgeEvery = 250 * time.Millisecond

// closeSegment closes the WAL segment being streamed and waits until Barman has
// archived it (`barman switch-wal --archive`), so a restore finds the WAL up to
// now (recover does not use a .partial segment).
//
// Barman archives a closed segment only once pg_receivewal has opened the next
// one, which it does when the site writes more WAL: on a quiet site that is the
// next checkpoint or standby snapshot, 10–15 s later, or never within the timeout
// when nothing was written since the last switch (Barman then waits the whole 60 s
// for "any new WAL file"). With live set, closeSegment commits an empty transaction
// there every nudgeEvery until Barman is done: an xid and its commit record, no
// row. The first commit also gives recovery a commit after the restore point when
// the point is "now" and nothing else was written (PostgreSQL stops at the first
// commit past the target time and fails when it reaches the end of the WAL
// first). A nudge that fails is reported and changes nothing else.
func closeSegment(ctx context.Context, r Runner, t Target, live *pgx.ConnConfig) (nudgeErr, err error) {
	nctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if live != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nudgeErr = nudgeWAL(nctx, live)
		}()
	}
	_, err = r.Barman(ctx, "switch-wal", "--archive", "--archive-timeout", "60", t.Site)
	stop()
	wg.Wait()
	return nudgeErr, err
}

// nudgeWAL commits an empty transaction that has an xid (pg_current_xact_id
// assigns one) every nudgeEvery until ctx ends: each writes and flushes a commit
// record, which the walsender streams to pg_receivewal.
func nudgeWAL(ctx context.Context, live *pgx.ConnConfig) error {
	c, err := pgx.ConnectConfig(ctx, live)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()
	for {
		if _, err := c.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(nudgeEvery):
		}
	}
}
