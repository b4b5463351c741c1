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
// there (an xid and its commit record, no row) before the switch and then every
// nudgeEvery until Barman is done. The first commit also gives recovery a commit
// after the restore point when the point is "now" and nothing else was written
// (PostgreSQL stops at the first commit past the target time and fails when it
// reaches the end of the WAL first). A nudge that fails is reported and changes
// nothing else.
func closeSegment(ctx context.Context, r Runner, t Target, live *pgx.ConnConfig) (nudgeErr, err error) {
	var c *pgx.Conn
	if live != nil {
		// The first commit comes before the switch: it is in the segment Barman
		// closes, whatever the timing of the ones that follow.
		if c, nudgeErr = pgx.ConnectConfig(ctx, live); nudgeErr == nil {
			defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()
			nudgeErr = commitEmpty(ctx, c)
		}
	}
	nctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if c != nil && nudgeErr == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nudgeErr = nudgeWAL(nctx, c)
		}()
	}
	_, err = r.Barman(ctx, "switch-wal", "--archive", "--archive-timeout", "60", t.Site)
	stop()
	wg.Wait()
	return nudgeErr, err
}

// commitEmpty commits a transaction that has an xid (pg_current_xact_id assigns
// one) and no row: it writes and flushes a commit record, which the walsender
// streams to pg_receivewal.
func commitEmpty(ctx context.Context, c *pgx.Conn) error {
	_, err := c.Exec(ctx, "SELECT pg_current_xact_id()")
	return err
}

// nudgeWAL commits an empty transaction every nudgeEvery until ctx ends.
func nudgeWAL(ctx context.Context, c *pgx.Conn) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(nudgeEvery):
		}
		if err := commitEmpty(ctx, c); err != nil && ctx.Err() == nil {
			return err
		}
	}
}
