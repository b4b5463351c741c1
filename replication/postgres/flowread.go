package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pubReading is what the publisher's read of a flow gives besides FlowStatus and
// Observed: the replay lag, when the subscriber last replied, and when it was read.
type pubReading struct {
	replayLag, replyTime *float64
	at                   time.Time
}

// readPublisher reads the flow's slot on the publisher into fs and o; false when
// the read failed (the error is in fs).
func readPublisher(ctx context.Context, pub *pgxpool.Pool, s *Subscription, fs *FlowStatus, o *Observed, pr *pubReading) bool {
	rctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	var keep string
	err := pub.QueryRow(rctx, `SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size'`).Scan(&keep)
	if err == nil {
		if n, err := ParseSize(keep); err == nil {
			fs.MaxSlotWALKeep = n
		}
		before := time.Now()
		err = pub.QueryRow(rctx, `SELECT s.active, coalesce(s.wal_status, ''),
				coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint,
				coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
				extract(epoch FROM r.replay_lag)::float8, coalesce(r.state, ''),
				extract(epoch FROM r.reply_time)::float8
			FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
			WHERE s.slot_name = $1`, s.Name).Scan(&o.SlotActive, &fs.WALStatus, &fs.RetainedBytes, &fs.LagBytes, &pr.replayLag, &o.SenderState, &pr.replyTime)
		pr.at = midpoint(before, time.Now())
	}
	cancel()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		o.PubRead = true
	case err != nil:
		fs.Errors = append(fs.Errors, fmt.Sprintf("%s: read slot %s: %v", s.Flow.From, s.Name, err))
		fs.unread = append(fs.unread, s.Flow.From)
		return false
	default:
		o.PubRead, o.SlotFound = true, true
	}
	return true
}

// subReading is what the subscriber's read of a flow gives besides FlowStatus and
// Observed.
type subReading struct {
	oid            uint32
	sinceConfirmed *float64
	// subClock is the subscriber's clock at the read, receiptTime when it last got
	// a message; at is when it was read by this machine's clock.
	subClock, receiptTime *float64
	at                    time.Time
}

// readSubscriber reads the flow's subscription into fs and o. When it is absent or
// cannot be read, fs is classified and final and ok is false.
func readSubscriber(ctx context.Context, sub *pgxpool.Pool, s *Subscription, fs *FlowStatus, o *Observed) (subReading, bool) {
	var (
		sr                 subReading
		applyErrs, syncErr *int64
		interval           int64
	)
	rctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	before := time.Now()
	err := sub.QueryRow(rctx, `SELECT s.oid, s.subenabled, st.apply_error_count, st.sync_error_count,
			w.pid IS NOT NULL, extract(epoch FROM now() - w.latest_end_time)::float8,
			(SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid AND r.srsubstate <> 'r')::int,
			extract(epoch FROM w.last_msg_receipt_time)::float8, extract(epoch FROM clock_timestamp())::float8,
			(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_receiver_status_interval')
		FROM pg_subscription s
		LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid
		LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL
		WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		s.Name).Scan(&sr.oid, &o.Enabled, &applyErrs, &syncErr, &o.Running, &sr.sinceConfirmed, &fs.TablesSyncing, &sr.receiptTime, &sr.subClock, &interval)
	sr.at = midpoint(before, time.Now())
	cancel()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		o.SubRead = true
		fs.State, fs.Reason = Classify(*o)
		fs.Resolution = "run sitectl deploy (or plan) to create it"
		return sr, false
	case err != nil:
		fs.Errors = append(fs.Errors, fmt.Sprintf("%s: read subscription %s: %v", s.Site, s.Name, err))
		fs.unread = append(fs.unread, s.Site)
		fs.State, fs.Reason = Classify(*o)
		return sr, false
	}
	o.SubRead, o.SubFound = true, true
	o.StatusInterval = time.Duration(interval) * time.Second
	o.TablesSyncing = fs.TablesSyncing
	if applyErrs != nil {
		fs.ApplyErrors = *applyErrs
	}
	if syncErr != nil {
		fs.SyncErrors = *syncErr
	}
	o.Errors = fs.ApplyErrors + fs.SyncErrors
	return sr, true
}

// ages sets how long each end of the flow has not heard from the other.
func (sr subReading) ages(o *Observed, pr pubReading) {
	if sr.subClock == nil {
		return
	}
	// Both times are stamped by the subscriber's clock: reply_time when it sent its
	// last status message, last_msg_receipt_time when it last got one. The
	// subscriber clock's offset from this machine's (measured around its read)
	// puts reply_time on the scale of the publisher's read.
	subOffset := *sr.subClock - epoch(sr.at)
	if pr.replyTime != nil && !pr.at.IsZero() {
		o.ReplyAge = seconds(epoch(pr.at) - (*pr.replyTime - subOffset))
	}
	if sr.receiptTime != nil {
		o.ReceiptAge = seconds(*sr.subClock - *sr.receiptTime)
	}
}
