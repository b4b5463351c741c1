package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/sites"
)

// Flow states reported by Status.
const (
	StateStreaming  = "streaming"
	StateCatchingUp = "catching up"
	StateSyncing    = "syncing" // initial table copy running
	StateDisabledBy = "disabled by error"
	StateDisabled   = "disabled" // disabled by hand, no error recorded
	StateDown       = "down"     // enabled but not connected
	StateMissing    = "missing"  // not created yet: run sitectl deploy
	StateUnknown    = "unknown"  // a site could not be read
)

// CatchUpBytes is the lag above which a connected flow is "catching up".
const CatchUpBytes = 1 << 20

// WarnFraction of max_slot_wal_keep_size retained by a slot raises a warning.
const WarnFraction = 0.8

// FlowStatus is the state of one replication flow.
type FlowStatus struct {
	Flow         string `json:"flow"`
	From         string `json:"from"`
	To           string `json:"to"`
	Subscription string `json:"subscription"`
	State        string `json:"state"`
	// LagBytes is how much WAL the subscriber has not confirmed.
	LagBytes int64 `json:"lag_bytes"`
	// LagSeconds is the walsender's replay lag while streaming, else the time since
	// the subscriber last confirmed a position (when behind).
	LagSeconds float64 `json:"lag_seconds"`
	// RetainedBytes is the WAL the slot keeps on the publisher.
	RetainedBytes int64  `json:"retained_wal_bytes"`
	WALStatus     string `json:"wal_status,omitempty"`
	// MaxSlotWALKeep is the publisher's max_slot_wal_keep_size in bytes (-1 unlimited).
	MaxSlotWALKeep int64    `json:"max_slot_wal_keep_bytes"`
	ApplyErrors    int64    `json:"apply_error_count"`
	SyncErrors     int64    `json:"sync_error_count"`
	TablesSyncing  int      `json:"tables_syncing,omitempty"`
	Pending        *Pending `json:"pending,omitempty"`
	Resolution     string   `json:"resolution,omitempty"`
	Warnings       []string `json:"warnings,omitempty"`
	Errors         []string `json:"errors,omitempty"`
}

// Report is the replication status of the selected flows.
type Report struct {
	Env   string       `json:"environment"`
	Flows []FlowStatus `json:"flows"`
}

// Healthy reports whether every flow streams (or catches up) with no warning.
func (r *Report) Healthy() bool {
	for _, f := range r.Flows {
		if (f.State != StateStreaming && f.State != StateCatchingUp) || len(f.Warnings) > 0 || len(f.Errors) > 0 {
			return false
		}
	}
	return true
}

// Status reports every flow that starts or ends at one of the named sites (all
// flows when none is named). Unreachable sites are reported, not fatal.
func Status(ctx context.Context, topo *sites.Topology, sess *Session, only ...string) (*Report, error) {
	d, err := Desire(topo)
	if err != nil {
		return nil, err
	}
	if _, err := topo.Select(only...); err != nil {
		return nil, err
	}
	r := &Report{Env: topo.Env}
	for _, f := range topo.Flows {
		if len(only) > 0 && !contains(only, f.From) && !contains(only, f.To) {
			continue
		}
		var sub *Subscription
		for i := range d.Subscriptions[f.To] {
			if d.Subscriptions[f.To][i].Flow.From == f.From {
				sub = &d.Subscriptions[f.To][i]
			}
		}
		r.Flows = append(r.Flows, flowStatus(ctx, sess, sub))
	}
	return r, nil
}

func flowStatus(ctx context.Context, sess *Session, s *Subscription) FlowStatus {
	fs := FlowStatus{Flow: s.Flow.String(), From: s.Flow.From, To: s.Flow.To, Subscription: s.Name, State: StateUnknown, MaxSlotWALKeep: -1}
	pub, perr := sess.Pool(ctx, s.Flow.From)
	if perr != nil {
		fs.Errors = append(fs.Errors, perr.Error())
	}
	sub, serr := sess.Pool(ctx, s.Site)
	if serr != nil {
		fs.Errors = append(fs.Errors, serr.Error())
	}

	slotFound, slotActive, senderState := false, false, ""
	var replayLag *float64
	if pub != nil {
		var keep string
		if err := pub.QueryRow(ctx, `SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size'`).Scan(&keep); err == nil {
			if n, err := ParseSize(keep); err == nil {
				fs.MaxSlotWALKeep = n
			}
		}
		err := pub.QueryRow(ctx, `SELECT s.active, coalesce(s.wal_status, ''),
				coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint,
				coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
				extract(epoch FROM r.replay_lag)::float8, coalesce(r.state, '')
			FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
			WHERE s.slot_name = $1`, s.Name).Scan(&slotActive, &fs.WALStatus, &fs.RetainedBytes, &fs.LagBytes, &replayLag, &senderState)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			fs.Errors = append(fs.Errors, fmt.Sprintf("%s: read slot %s: %v", s.Flow.From, s.Name, err))
		default:
			slotFound = true
		}
	}
	if sub == nil {
		return fs
	}
	var (
		oid                uint32
		enabled, running   bool
		sinceConfirmed     *float64
		applyErrs, syncErr *int64
	)
	err := sub.QueryRow(ctx, `SELECT s.oid, s.subenabled, st.apply_error_count, st.sync_error_count,
			w.pid IS NOT NULL, extract(epoch FROM now() - w.latest_end_time)::float8,
			(SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid AND r.srsubstate <> 'r')::int
		FROM pg_subscription s
		LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid
		LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL
		WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		s.Name).Scan(&oid, &enabled, &applyErrs, &syncErr, &running, &sinceConfirmed, &fs.TablesSyncing)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		fs.State = StateMissing
		fs.Resolution = "run sitectl deploy (or plan) to create it"
		return fs
	case err != nil:
		fs.Errors = append(fs.Errors, fmt.Sprintf("%s: read subscription %s: %v", s.Site, s.Name, err))
		return fs
	}
	if applyErrs != nil {
		fs.ApplyErrors = *applyErrs
	}
	if syncErr != nil {
		fs.SyncErrors = *syncErr
	}
	switch {
	case replayLag != nil && slotActive:
		fs.LagSeconds = *replayLag
	case fs.LagBytes > 0 && sinceConfirmed != nil:
		fs.LagSeconds = *sinceConfirmed
	}
	if !slotFound && pub != nil {
		fs.Errors = append(fs.Errors, fmt.Sprintf("%s has no slot %s: drop the subscription at %s (ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s) and run sitectl deploy to re-create it",
			s.Flow.From, s.Name, s.Site, s.Name, s.Name, s.Name))
	}
	if pub != nil && slotFound && !slotActive && fs.LagBytes > 0 {
		// Nobody streams from the slot: see what waits in it, and since when.
		pend, err := FindConflict(ctx, pub, sub, s, oid)
		if err != nil {
			fs.Errors = append(fs.Errors, fmt.Sprintf("look for a conflict: %v", err))
		}
		fs.Pending = pend
		if pend != nil && !pend.OldestCommit.IsZero() {
			fs.LagSeconds = time.Since(pend.OldestCommit).Seconds()
		}
	}
	switch {
	case !enabled:
		fs.State = StateDisabled
		if fs.ApplyErrors+fs.SyncErrors > 0 {
			fs.State = StateDisabledBy
		}
		if fs.Pending != nil && fs.Pending.Conflict != nil {
			fs.State = StateDisabledBy
			fs.Resolution = fs.Pending.Conflict.Resolution()
		} else {
			fs.Resolution = "no conflicting change is pending (a lost connection also disables a subscription with disable_on_error): sitectl deploy re-enables it, or ALTER SUBSCRIPTION " + s.Name + " ENABLE at " + s.Site
		}
	case fs.TablesSyncing > 0:
		fs.State = StateSyncing
	case !running || !slotActive || pub == nil:
		fs.State = StateDown
	case fs.LagBytes > CatchUpBytes || senderState == "catchup":
		fs.State = StateCatchingUp
	default:
		fs.State = StateStreaming
	}
	switch fs.WALStatus {
	case "lost":
		fs.Errors = append(fs.Errors, fmt.Sprintf("slot %s on %s is lost (it passed max_slot_wal_keep_size): the subscription cannot resume; drop it at %s and run sitectl deploy to re-create it with a fresh copy", s.Name, s.Flow.From, s.Site))
	case "unreserved":
		fs.Warnings = append(fs.Warnings, fmt.Sprintf("slot %s on %s is past max_slot_wal_keep_size: its WAL goes at the next checkpoint unless the link returns now", s.Name, s.Flow.From))
	}
	if fs.MaxSlotWALKeep > 0 && float64(fs.RetainedBytes) >= WarnFraction*float64(fs.MaxSlotWALKeep) && fs.WALStatus != "lost" {
		fs.Warnings = append(fs.Warnings, fmt.Sprintf("slot %s on %s retains %s of max_slot_wal_keep_size %s: bring the link back, or raise postgres.max_slot_wal_keep_size", s.Name, s.Flow.From, bytesText(fs.RetainedBytes), bytesText(fs.MaxSlotWALKeep)))
	}
	return fs
}

// Render prints the report as a table, with warnings, errors and resolutions
// under their flow.
func (r *Report) Render(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FLOW\tSTATE\tLAG\tLAG(s)\tRETAINED WAL\tWAL STATUS\tERRORS (apply/sync)")
	for _, f := range r.Flows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%s\t%s\t%d/%d\n", f.Flow, f.State, bytesText(f.LagBytes), f.LagSeconds,
			bytesText(f.RetainedBytes), orDash(f.WALStatus), f.ApplyErrors, f.SyncErrors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, f := range r.Flows {
		for _, e := range f.Errors {
			fmt.Fprintf(&b, "✗ %s: %s\n", f.Flow, e)
		}
		for _, wn := range f.Warnings {
			fmt.Fprintf(&b, "! %s: %s\n", f.Flow, wn)
		}
		if p := f.Pending; p != nil {
			if p.Conflict != nil {
				fmt.Fprintf(&b, "✗ %s: conflict: %s\n", f.Flow, p.Conflict.Summary())
			}
			if p.Transactions > 0 {
				fmt.Fprintf(&b, "  %s: %d transactions (%d changes) wait in slot %s from LSN %s, the oldest committed %s\n",
					f.Flow, p.Transactions, p.Changes, f.Subscription, p.FirstLSN, p.OldestCommit.UTC().Format(time.RFC3339))
			}
		}
		if f.Resolution != "" {
			fmt.Fprintf(&b, "  resolve %s: %s\n", f.Flow, f.Resolution)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func bytesText(n int64) string {
	switch {
	case n < 0:
		return "unlimited"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
