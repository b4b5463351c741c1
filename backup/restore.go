package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/internal/progress"
)

// TimeLayout is how restore times are given and shown (RFC 3339, UTC).
const TimeLayout = time.RFC3339

// OutsideWindowError is a restore time Barman cannot reach.
type OutsideWindowError struct {
	Site     string
	Time     time.Time
	From, To time.Time
}

func (e *OutsideWindowError) Error() string {
	if e.From.IsZero() {
		return fmt.Sprintf("restore %s to %s: the site has no base backup yet, so nothing can be restored; run `sitectl backup run --site %s` first", e.Site, e.Time.UTC().Format(TimeLayout), e.Site)
	}
	return fmt.Sprintf("restore %s to %s: outside the recovery window %s to %s; give --time inside it", e.Site, e.Time.UTC().Format(TimeLayout), e.From.UTC().Format(TimeLayout), e.To.UTC().Format(TimeLayout))
}

// RestoreOptions say what to restore and where.
type RestoreOptions struct {
	// Time is the point to restore to: the database as it was at Time.
	Time time.Time
	// Dest is the data directory to create, on the Barman server's host; it must not
	// exist. The live database is never a destination.
	Dest string
	// Now is the end of the recovery window while WAL streams (time.Now if zero).
	Now time.Time
	// Live reaches the site's live database (password set), optional: while Barman
	// closes the streamed WAL segment, restore commits empty transactions there so
	// the segment is archived at once (closeSegment). Nil: Barman waits for the
	// site's next WAL (10–15 s on a quiet site, 60 s on an idle one).
	Live     *pgx.ConnConfig
	Progress *progress.Printer
}

// Restored is a data directory recovered to a time, ready to start.
type Restored struct {
	Site     string        `json:"site"`
	BackupID string        `json:"backup_id"`
	Target   time.Time     `json:"target_time"`
	Dest     string        `json:"data_directory"`
	Took     time.Duration `json:"took_ns"`
}

// Restore recovers site t's database as of o.Time into o.Dest with barman recover:
// the newest base backup that ended before o.Time, plus the WAL up to o.Time. The
// server started on it stops replaying at o.Time and is promoted (read-write).
func Restore(ctx context.Context, r Runner, t Target, o RestoreOptions) (Restored, error) {
	start := time.Now()
	now := o.Now
	if now.IsZero() {
		now = start
	}
	backups, err := ListBackups(ctx, r, t.Site)
	if err != nil {
		return Restored{}, fmt.Errorf("restore %s: %w", t.Site, err)
	}
	base, err := pickBackup(t.Site, backups, o.Time, now)
	if err != nil {
		return Restored{}, err
	}
	// Close the WAL segment being streamed so the WAL up to o.Time is in the
	// archive (a partial segment is not used by recover). Not fatal: a site that is
	// down has nothing newer to give.
	done := o.Progress.Step("close the current WAL segment of %s", t.Site)
	nudgeErr, err := closeSegment(ctx, r, t, o.Live)
	done(nil)
	if err != nil {
		o.Progress.Warnf("%s: the newest WAL may be missing from the archive: %v", t.Site, err)
	}
	if nudgeErr != nil {
		o.Progress.Warnf("%s: could not commit at the live database to close the WAL segment sooner: %v", t.Site, nudgeErr)
	}
	done = o.Progress.Step("recover %s backup %s to %s into %s", t.Site, base.ID, o.Time.UTC().Format(TimeLayout), o.Dest)
	_, err = r.Barman(ctx, "recover", "--target-time", o.Time.UTC().Format("2006-01-02 15:04:05.999999-07:00"),
		"--target-action", "promote", t.Site, base.ID, o.Dest)
	done(err)
	if err != nil {
		return Restored{}, fmt.Errorf("restore %s: %w", t.Site, err)
	}
	return Restored{Site: t.Site, BackupID: base.ID, Target: o.Time, Dest: o.Dest, Took: time.Since(start)}, nil
}

// pickBackup is the newest base backup that ended before at; an error names the
// recovery window when at is outside it.
func pickBackup(site string, backups []BaseBackup, at, now time.Time) (BaseBackup, error) {
	if len(backups) == 0 {
		return BaseBackup{}, &OutsideWindowError{Site: site, Time: at}
	}
	if at.Before(backups[0].End) || at.After(now) {
		return BaseBackup{}, &OutsideWindowError{Site: site, Time: at, From: backups[0].End, To: now}
	}
	var pick BaseBackup
	for _, b := range backups {
		if !b.End.After(at) {
			pick = b
		}
	}
	return pick, nil
}

// ErrNoBackup is returned by RunBackup when Barman reports no new backup.
var ErrNoBackup = errors.New("barman took no backup")

// RunBackup takes a base backup of site t now and waits for the WAL it needs.
func RunBackup(ctx context.Context, r Runner, t Target, p *progress.Printer) (BaseBackup, error) {
	before, err := ListBackups(ctx, r, t.Site)
	if err != nil {
		return BaseBackup{}, err
	}
	// Barman refuses a first backup until one WAL segment has arrived through the
	// stream: close the current one and wait for it.
	var checks map[string]struct {
		Status string `json:"status"`
	}
	_ = barmanJSON(ctx, r, t.Site, &checks, "check", t.Site)
	if c, ok := checks["wal_archive"]; ok && c.Status != "OK" {
		done := p.Step("first WAL segment of %s through the stream", t.Site)
		_, err := r.Barman(ctx, "switch-wal", "--archive", "--archive-timeout", "60", t.Site)
		done(err)
		if err != nil {
			return BaseBackup{}, fmt.Errorf("backup %s: %w", t.Site, err)
		}
	}
	done := p.Step("base backup of %s (pg_basebackup through %s)", t.Site, r.Name())
	_, err = r.Barman(ctx, "backup", "--wait", "--wait-timeout", "600", t.Site)
	done(err)
	if err != nil {
		return BaseBackup{}, fmt.Errorf("backup %s: %w", t.Site, err)
	}
	after, err := ListBackups(ctx, r, t.Site)
	if err != nil {
		return BaseBackup{}, err
	}
	if len(after) == 0 || len(before) > 0 && after[len(after)-1].ID == before[len(before)-1].ID {
		return BaseBackup{}, fmt.Errorf("backup %s: %w", t.Site, ErrNoBackup)
	}
	return ShowBackup(ctx, r, t.Site, after[len(after)-1].ID)
}
