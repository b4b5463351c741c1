package backup

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// BaseBackup is one base backup in Barman's catalogue.
type BaseBackup struct {
	ID        string        `json:"id"`
	Status    string        `json:"status"`
	Begin     time.Time     `json:"begin,omitzero"`
	End       time.Time     `json:"end"`
	Duration  time.Duration `json:"duration_ns,omitempty"`
	SizeBytes int64         `json:"size_bytes"`
}

// Status is one site's backup state, as `sitectl backup status` shows it.
type Status struct {
	Site   string `json:"site"`
	Server string `json:"server"`
	// Last is the newest completed base backup; nil when there is none.
	Last    *BaseBackup `json:"last_backup"`
	Backups int         `json:"backups"`
	// Streaming is true when Barman's pg_receivewal streams from the site's slot.
	Streaming      bool   `json:"streaming"`
	StreamingState string `json:"streaming_state"`
	// LagBytes is the WAL the site has written that Barman has not written yet.
	LagBytes int64 `json:"lag_bytes"`
	// SlotOK is false when Barman's check of the replication slot fails (the slot is
	// missing, or lost WAL past max_slot_wal_keep_size).
	SlotOK   bool   `json:"slot_ok"`
	SlotHint string `json:"slot_hint,omitempty"`
	// Slot is the slot as the site's own database shows it (AddSlot); its
	// wal_status "lost" says the max_slot_wal_keep_size bound was hit. SlotError
	// says why it could not be read (the site's database did not answer).
	Slot      *SlotState `json:"slot,omitempty"`
	SlotError string     `json:"slot_error,omitempty"`
	// WindowFrom and WindowTo bound the restorable times: the end of the oldest base
	// backup to the newest WAL received (now while streaming, else the end of the
	// newest backup).
	WindowFrom time.Time `json:"window_from,omitzero"`
	WindowTo   time.Time `json:"window_to,omitzero"`
	Retention  string    `json:"retention"`
	Schedule   string    `json:"schedule"`
	// Problems say why the site is not healthy (exit 1); empty when it is.
	Problems []string `json:"problems"`
}

// AddSlot records the slot as the site's database shows it (read with ReadSlot;
// err: it could not be read, which is reported but is no backup problem). A lost
// slot, or none, is a problem.
func (s *Status) AddSlot(slot *SlotState, keep string, err error) {
	switch {
	case err != nil:
		s.SlotError = err.Error()
	case slot == nil:
		s.Problems = append(s.Problems, "the site's database has no backup slot: run `sitectl deploy` for the site (its backup database side creates it)")
	case slot.Lost():
		s.Slot = slot
		s.Problems = append(s.Problems, fmt.Sprintf("slot %s is lost: it passed max_slot_wal_keep_size %s and PostgreSQL removed WAL the backup server had not received; restores cannot cross the gap. `sitectl deploy` re-creates it, then take a base backup (`sitectl backup run --site %s`)", slot.Name, keep, s.Site))
	default:
		s.Slot = slot
	}
}

// OK reports whether the site's backups are healthy.
func (s Status) OK() bool { return len(s.Problems) == 0 }

// GetStatus reads site t's backup state from its Barman server at now.
// An unreachable Barman is a status with that problem, not an error.
func GetStatus(ctx context.Context, r Runner, t Target, now time.Time) Status {
	st := Status{Site: t.Site, Server: t.Backup.Server, Schedule: t.Backup.Schedule.D().String(),
		Retention: fmt.Sprintf("RECOVERY WINDOW OF %d DAYS, minimum %d backups", t.Backup.RetentionDays, t.Backup.MinimumRedundancy), Problems: []string{}}
	backups, err := ListBackups(ctx, r, t.Site)
	if err != nil {
		st.Problems = append(st.Problems, fmt.Sprintf("backup server unreachable or failing: %v", err))
		return st
	}
	st.Backups = len(backups)
	if len(backups) > 0 {
		last, err := ShowBackup(ctx, r, t.Site, backups[len(backups)-1].ID)
		if err != nil {
			st.Problems = append(st.Problems, err.Error())
			last = backups[len(backups)-1]
		}
		st.Last = &last
		st.WindowFrom = backups[0].End
		st.WindowTo = last.End
	}
	if err := streaming(ctx, r, t, &st); err != nil {
		st.Problems = append(st.Problems, err.Error())
	}
	if st.Streaming && st.Last != nil {
		st.WindowTo = now
	}
	var checks map[string]struct {
		Status string `json:"status"`
		Hint   string `json:"hint"`
	}
	if err := barmanJSON(ctx, r, t.Site, &checks, "check", t.Site); err != nil {
		// `barman check` exits 1 when a check fails; its JSON still says which.
		if checks == nil {
			st.Problems = append(st.Problems, err.Error())
		}
	}
	if c, ok := checks["replication_slot"]; ok {
		st.SlotOK = c.Status == "OK"
		st.SlotHint = c.Hint
	}
	st.Problems = append(st.Problems, judge(st, t, now)...)
	return st
}

// judge lists what makes st unhealthy at now.
func judge(st Status, t Target, now time.Time) []string {
	var out []string
	switch {
	case st.Last == nil:
		out = append(out, fmt.Sprintf("no base backup: run `sitectl backup run --site %s`", t.Site))
	case now.Sub(st.Last.End) > t.Backup.Schedule.D():
		out = append(out, fmt.Sprintf("newest base backup is %s old, more than the schedule %s", now.Sub(st.Last.End).Round(time.Second), t.Backup.Schedule.D()))
	}
	if !st.Streaming {
		out = append(out, fmt.Sprintf("WAL streaming is %s: restores cannot reach past the newest WAL received", orNone(st.StreamingState)))
	}
	if !st.SlotOK {
		out = append(out, fmt.Sprintf("replication slot %s is not healthy (%s): it may have lost WAL past backup.max_slot_wal_keep_size %s", t.Slot, orNone(st.SlotHint), t.Backup.MaxSlotWALKeepSize))
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "not running"
	}
	return s
}

// streaming fills the WAL streaming state of the site's slot.
func streaming(ctx context.Context, r Runner, t Target, st *Status) error {
	var rs struct {
		Clients []struct {
			Slot  string `json:"replication_slot"`
			State string `json:"current_state"`
			Write int64  `json:"write_lsn_diff_bytes"`
		} `json:"streaming_clients"`
	}
	if err := barmanJSON(ctx, r, t.Site, &rs, "replication-status", t.Site); err != nil {
		return err
	}
	for _, c := range rs.Clients {
		if c.Slot != t.Slot {
			continue
		}
		st.StreamingState = c.State
		st.Streaming = c.State == "streaming"
		st.LagBytes = max(-c.Write, 0)
	}
	return nil
}

// ListBackups lists the site's completed base backups, oldest first.
func ListBackups(ctx context.Context, r Runner, site string) ([]BaseBackup, error) {
	var list []struct {
		ID     string `json:"backup_id"`
		End    string `json:"end_time_timestamp"`
		Size   int64  `json:"size_bytes"`
		Status string `json:"status"`
	}
	if err := barmanJSON(ctx, r, site, &list, "list-backups", site); err != nil {
		return nil, err
	}
	var out []BaseBackup
	for _, b := range list {
		if b.Status != "DONE" {
			continue
		}
		end, err := unix(b.End)
		if err != nil {
			return nil, fmt.Errorf("%s: backup %s: end_time_timestamp %q: %w", r.Name(), b.ID, b.End, err)
		}
		out = append(out, BaseBackup{ID: b.ID, Status: b.Status, End: end, SizeBytes: b.Size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].End.Before(out[j].End) })
	return out, nil
}

// ShowBackup reads one base backup's times and size.
func ShowBackup(ctx context.Context, r Runner, site, id string) (BaseBackup, error) {
	var sb struct {
		ID     string `json:"backup_id"`
		Status string `json:"status"`
		Base   struct {
			Begin    string  `json:"begin_time_timestamp"`
			End      string  `json:"end_time_timestamp"`
			CopySecs float64 `json:"copy_time_seconds"`
			Size     int64   `json:"disk_usage_bytes"`
		} `json:"base_backup_information"`
	}
	if err := barmanJSON(ctx, r, site, &sb, "show-backup", site, id); err != nil {
		return BaseBackup{}, err
	}
	begin, err1 := unix(sb.Base.Begin)
	end, err2 := unix(sb.Base.End)
	if err1 != nil || err2 != nil {
		return BaseBackup{}, fmt.Errorf("%s: backup %s: times %q, %q are not Unix times", r.Name(), id, sb.Base.Begin, sb.Base.End)
	}
	return BaseBackup{ID: sb.ID, Status: sb.Status, Begin: begin, End: end, Duration: end.Sub(begin), SizeBytes: sb.Base.Size}, nil
}

func unix(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(n, 0).UTC(), nil
}
