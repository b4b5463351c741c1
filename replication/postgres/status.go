package postgres

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sitectl/sitectl/internal/text"
	"github.com/sitectl/sitectl/sites"
)

// Flow states reported by Status.
const (
	StateStreaming  = "streaming"
	StateCatchingUp = "catching up"
	StateSyncing    = "syncing" // initial table copy running
	StateStalled    = "stalled" // connected, but nothing crossed the link for a while: it is likely cut
	StateDisabledBy = "disabled by error"
	StateDisabled   = "disabled" // disabled by hand, no error recorded
	StateDown       = "down"     // enabled but not connected
	StateMissing    = "missing"  // not created yet: run sitectl deploy
	StateUnknown    = "unknown"  // a site could not be read
)

// Working reports whether a flow in this state carries changes: streaming, catching
// up, or copying its tables for the first time. Every other state fails
// `sitectl replication status`.
func Working(state string) bool {
	return state == StateStreaming || state == StateCatchingUp || state == StateSyncing
}

// CatchUpBytes is the lag above which a connected flow is "catching up".
const CatchUpBytes = 1 << 20

// WarnFraction of max_slot_wal_keep_size retained by a slot raises a warning.
const WarnFraction = 0.8

// StallMargin is added to the subscriber's wal_receiver_status_interval to give the
// silence after which a connected flow is "stalled" (5 s with the 1 s interval
// ServerSettings sets).
const StallMargin = 4 * time.Second

// ReadTimeout bounds the reads of one flow at one site: a site whose database stops
// answering is reported, not waited for.
var ReadTimeout = 10 * time.Second

// FlowStatus is the state of one replication flow.
type FlowStatus struct {
	Flow         string `json:"flow"`
	From         string `json:"from"`
	To           string `json:"to"`
	Subscription string `json:"subscription"`
	State        string `json:"state"`
	// Reason says why a flow that does not work is in its state ("no message for 6s").
	Reason string `json:"reason,omitempty"`
	// LagBytes is how much WAL the subscriber has not confirmed.
	LagBytes int64 `json:"lag_bytes"`
	// LagSeconds is the walsender's replay lag while streaming, else the time since
	// the subscriber last confirmed a position (when behind).
	LagSeconds float64 `json:"lag_seconds"`
	// SilentSeconds is how long nothing crossed the link: the shorter of the time
	// since the publisher last heard from the subscriber and the time since the
	// subscriber last heard from the publisher (absent when unknown).
	SilentSeconds *float64 `json:"silent_seconds,omitempty"`
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

	unread []string // sites that could not be read
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

// Failing lists the flows that do not work (see Working), in report order.
func (r *Report) Failing() []FlowStatus {
	var out []FlowStatus
	for _, f := range r.Flows {
		if !Working(f.State) {
			out = append(out, f)
		}
	}
	return out
}

// Unread lists the sites that could not be read, sorted.
func (r *Report) Unread() []string {
	var out []string
	for _, f := range r.Flows {
		out = append(out, f.unread...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Summary is the report's last line: every flow works, or which do not and why.
func (r *Report) Summary() string {
	bad := r.Failing()
	if len(bad) == 0 {
		return fmt.Sprintf("✓ all %d replication flows work (streaming, catching up or syncing)", len(r.Flows))
	}
	parts := make([]string, len(bad))
	for i, f := range bad {
		parts[i] = f.Flow + " " + f.State
		if f.Reason != "" {
			parts[i] += " (" + f.Reason + ")"
		}
	}
	return fmt.Sprintf("✗ %d of %d replication flows do not work: %s", len(bad), len(r.Flows), strings.Join(parts, "; "))
}

// Status reports every flow that starts or ends at one of the named sites (all
// flows when none is named). Unreachable sites are reported, not fatal.
func Status(ctx context.Context, topo *sites.Topology, sess *Session, only ...string) (*Report, error) {
	d, err := buildLive(ctx, topo, sess)
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

// Observed is what the publisher and the subscriber say about one flow: the input
// of Classify.
type Observed struct {
	// PubRead and SubRead: the site's database answered.
	PubRead, SubRead bool
	// The publisher's slot and its walsender.
	SlotFound, SlotActive bool
	SenderState           string // pg_stat_replication.state ("streaming", "catchup")
	// ReplyAge is the time since the publisher's walsender last got a status
	// message from the subscriber (pg_stat_replication.reply_time), nil if none.
	ReplyAge *time.Duration
	LagBytes int64
	// The subscriber's subscription and its apply worker.
	SubFound, Enabled, Running bool
	// ReceiptAge is the time since the apply worker last got a message from the
	// publisher (pg_stat_subscription.last_msg_receipt_time), nil if none.
	ReceiptAge *time.Duration
	// StatusInterval is the subscriber's wal_receiver_status_interval: how often a
	// connected apply worker reports to the publisher even when idle.
	StatusInterval time.Duration
	TablesSyncing  int
	Errors         int64 // apply + sync error count
	Conflict       bool  // a conflicting change waits in the slot
}

// StallAfter is the silence after which a connected flow is stalled: the subscriber
// reports every StatusInterval, so on a working link the publisher never waits
// longer than that (plus the apply worker's 1 s nap).
func (o Observed) StallAfter() time.Duration {
	iv := o.StatusInterval
	if iv <= 0 {
		iv = 10 * time.Second // PostgreSQL's default
	}
	return iv + StallMargin
}

// Classify gives a flow's state from what its two ends say, and why when the flow
// does not work. A link that drops packets (a cut tunnel) keeps both ends
// "connected" until wal_sender_timeout / wal_receiver_timeout: it shows as stalled
// as soon as neither end has heard from the other for StallAfter.
func Classify(o Observed) (state, reason string) {
	switch {
	case !o.SubRead:
		return StateUnknown, "the subscriber could not be read"
	case !o.SubFound:
		return StateMissing, "no subscription at the subscriber"
	case !o.Enabled && (o.Errors > 0 || o.Conflict):
		return StateDisabledBy, "the subscription is disabled after an error"
	case !o.Enabled:
		return StateDisabled, "the subscription is disabled"
	case !o.PubRead:
		return StateUnknown, "the publisher could not be read"
	case !o.SlotFound:
		return StateDown, "the publisher has no slot for it"
	case !o.Running:
		return StateDown, "no apply worker runs at the subscriber"
	case !o.SlotActive:
		return StateDown, "no walsender streams from the slot"
	case o.TablesSyncing > 0:
		return StateSyncing, ""
	}
	if o.ReplyAge != nil && o.ReceiptAge != nil {
		silent := min(*o.ReplyAge, *o.ReceiptAge)
		if silent >= o.StallAfter() {
			return StateStalled, fmt.Sprintf("no message for %s", silent.Round(time.Second))
		}
	}
	if o.LagBytes > CatchUpBytes || o.SenderState == "catchup" {
		return StateCatchingUp, ""
	}
	return StateStreaming, ""
}

func flowStatus(ctx context.Context, sess *Session, s *Subscription) FlowStatus {
	fs := FlowStatus{Flow: s.Flow.String(), From: s.Flow.From, To: s.Flow.To, Subscription: s.Name, State: StateUnknown, MaxSlotWALKeep: -1}
	var o Observed
	pub, perr := sess.Pool(ctx, s.Flow.From)
	if perr != nil {
		fs.Errors = append(fs.Errors, perr.Error())
		fs.unread = append(fs.unread, s.Flow.From)
	}
	sub, serr := sess.Pool(ctx, s.Site)
	if serr != nil {
		fs.Errors = append(fs.Errors, serr.Error())
		fs.unread = append(fs.unread, s.Site)
	}

	var pr pubReading
	if pub != nil && !readPublisher(ctx, pub, s, &fs, &o, &pr) {
		pub = nil
	}
	o.LagBytes = fs.LagBytes
	if sub == nil {
		fs.State, fs.Reason = Classify(o)
		return fs
	}
	sr, ok := readSubscriber(ctx, sub, s, &fs, &o)
	if !ok {
		return fs
	}
	sr.ages(&o, pr)
	if o.ReplyAge != nil && o.ReceiptAge != nil {
		silent := min(*o.ReplyAge, *o.ReceiptAge).Seconds()
		fs.SilentSeconds = &silent
	}
	switch {
	case pr.replayLag != nil && o.SlotActive:
		fs.LagSeconds = *pr.replayLag
	case fs.LagBytes > 0 && sr.sinceConfirmed != nil:
		fs.LagSeconds = *sr.sinceConfirmed
	}
	if !o.SlotFound && pub != nil {
		fs.Errors = append(fs.Errors, fmt.Sprintf("%s has no slot %s: drop the subscription at %s (ALTER SUBSCRIPTION %s DISABLE; ALTER SUBSCRIPTION %s SET (slot_name = NONE); DROP SUBSCRIPTION %s) and run sitectl deploy to re-create it",
			s.Flow.From, s.Name, s.Site, s.Name, s.Name, s.Name))
	}
	if pub != nil && o.SlotFound && !o.SlotActive && fs.LagBytes > 0 {
		// Nobody streams from the slot: see what waits in it, and since when.
		pend, err := FindConflict(ctx, pub, sub, s, sr.oid)
		if err != nil {
			fs.Errors = append(fs.Errors, fmt.Sprintf("look for a conflict: %v", err))
		}
		fs.Pending = pend
		if pend != nil && !pend.OldestCommit.IsZero() {
			fs.LagSeconds = time.Since(pend.OldestCommit).Seconds()
		}
	}
	o.Conflict = fs.Pending != nil && fs.Pending.Conflict != nil
	fs.State, fs.Reason = Classify(o)
	advise(&fs, o, s)
	return fs
}

// advise adds to a classified flow its resolution and its slot's WAL warnings.
func advise(fs *FlowStatus, o Observed, s *Subscription) {
	switch {
	case fs.State == StateDisabledBy && o.Conflict:
		fs.Resolution = fs.Pending.Conflict.Resolution()
	case fs.State == StateDisabled || fs.State == StateDisabledBy:
		fs.Resolution = "no conflicting change is pending (a lost connection also disables a subscription with disable_on_error): sitectl deploy re-enables it, or ALTER SUBSCRIPTION " + s.Name + " ENABLE at " + s.Site
	case fs.State == StateStalled:
		fs.Resolution = fmt.Sprintf("check the link between %s and %s (sitectl tunnels status): after wal_sender_timeout the publisher drops the connection and the subscription is disabled; once the link is back, sitectl replication resume (or deploy) re-enables it", s.Flow.From, s.Site)
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
}

func midpoint(a, b time.Time) time.Time { return a.Add(b.Sub(a) / 2) }

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func seconds(s float64) *time.Duration {
	d := time.Duration(s * float64(time.Second))
	return &d
}

// Render prints the report as a table, with warnings, errors and resolutions
// under their flow.
func (r *Report) Render(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FLOW\tSTATE\tLAG\tLAG(s)\tRETAINED WAL\tWAL STATUS\tERRORS (apply/sync)")
	for _, f := range r.Flows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%s\t%s\t%d/%d\n", f.Flow, f.State, bytesText(f.LagBytes), f.LagSeconds,
			bytesText(f.RetainedBytes), text.OrDash(f.WALStatus), f.ApplyErrors, f.SyncErrors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, f := range r.Flows {
		if !Working(f.State) && f.State != StateUnknown && f.Reason != "" { // unknown: its errors say why
			fmt.Fprintf(&b, "✗ %s %s: %s\n", f.Flow, f.State, f.Reason)
		}
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
	b.WriteString(r.Summary() + "\n")
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
