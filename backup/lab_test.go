package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/backup/backuptest"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab/labtest"
)

// TestLabBackupPointInTimeRestore: Barman, configured from the rendered files,
// streams a real PostgreSQL's WAL through its slot and takes a base backup; status
// is red before the first backup and green after; the restore drill writes marked
// rows, notes the time, writes more and deletes the first "by mistake", restores
// to the noted time into a scratch server and finds every row before the point
// and none after, while the live database keeps the delete; a time before the
// first backup is refused naming the window; WAL streaming stopped turns status red.
func TestLabBackupPointInTimeRestore(t *testing.T) {
	labtest.Skip(t)
	ctx := context.Background()
	s := backuptest.Start(t, "douala")
	p := progress.New(os.Stderr)

	st := s.WaitStreaming(t)
	if st.OK() || st.Last != nil || !strings.Contains(strings.Join(st.Problems, "\n"), "no base backup") {
		t.Fatalf("status before any base backup: want red with 'no base backup', got %+v", st)
	}
	began := time.Now()
	bb, err := backup.RunBackup(ctx, s.Runner, s.Target, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE base backup of an empty site database: %d bytes, barman's copy %s, `backup run` %s", bb.SizeBytes, bb.Duration, time.Since(began).Round(time.Millisecond))
	st = backup.GetStatus(ctx, s.Runner, s.Target, time.Now())
	if !st.OK() || st.Last == nil || st.Last.ID != bb.ID || st.WindowFrom.IsZero() {
		t.Fatalf("status after a base backup: want green with backup %s, got %+v", bb.ID, st)
	}

	rep, err := backup.DrillRestore(ctx, backup.DrillOptions{Live: s.LiveConfig(t, "app"), Runner: s.Runner, Target: s.Target,
		Scratch: &backup.LocalScratch{Port: backuptest.FreePort(t), RunAs: "postgres"}, Dest: filepath.Join(s.RestoreDir, "scratch"), Rows: 1000, Progress: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE drill restore: recover %s, scratch start and replay %s; report %+v", rep.RecoverTook.Round(time.Millisecond), rep.StartTook.Round(time.Millisecond), rep)
	if !rep.Pass || rep.FoundBefore != 1000 || rep.FoundAfter != 0 || rep.Deleted != 1000 || rep.LiveBefore != 0 {
		t.Fatalf("drill restore: want 1000 rows before the point restored, none after, the live delete kept; got %+v", rep)
	}
	if len(rep.Counts) == 0 {
		t.Fatalf("drill restore compared no row counts: %+v", rep)
	}
	for _, c := range rep.Counts {
		if c.Live != c.Restored || c.Table == backup.DrillTable && (c.Site != "douala" || c.Live != 1000) {
			t.Fatalf("counts per table and site, live as of the point against restored: %+v", rep.Counts)
		}
	}
	if _, err := os.Stat(filepath.Join(s.RestoreDir, "scratch")); !os.IsNotExist(err) {
		t.Fatalf("the scratch copy was not removed: %v", err)
	}

	_, err = backup.Restore(ctx, s.Runner, s.Target, backup.RestoreOptions{Time: bb.Begin.Add(-time.Hour), Dest: filepath.Join(s.RestoreDir, "early")})
	var ow *backup.OutsideWindowError
	if !errors.As(err, &ow) || !strings.Contains(err.Error(), "outside the recovery window") {
		t.Fatalf("restore before the first backup: want the recovery window named, got %v", err)
	}

	t.Run("restore to now", func(t *testing.T) { restoreToNow(t, s) })

	if _, err := s.Runner.Barman(ctx, "receive-wal", "--stop", s.Target.Site); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = backup.GetStatus(ctx, s.Runner, s.Target, time.Now())
		if !st.Streaming {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streaming still reported 30s after receive-wal was stopped: %+v", st)
		}
		time.Sleep(time.Second)
	}
	if st.OK() || !strings.Contains(strings.Join(st.Problems, "\n"), "WAL streaming is") {
		t.Fatalf("status with streaming stopped: want red naming WAL streaming, got %+v", st)
	}
}

// cancelAfter cancels the drill's context as soon as the barman command named by
// its first argument returns, as a Ctrl-C at that moment would.
type cancelAfter struct {
	backup.Runner
	command string
	cancel  context.CancelFunc
}

func (c cancelAfter) Barman(ctx context.Context, args ...string) ([]byte, error) {
	out, err := c.Runner.Barman(ctx, args...)
	if len(args) > 0 && args[0] == c.command {
		c.cancel()
	}
	return out, err
}

// TestLabBackupDrillInterrupted: a restore drill interrupted (its context
// cancelled, as Ctrl-C does) right after `barman recover` filled the scratch
// directory returns the cancellation and leaves no scratch directory behind.
func TestLabBackupDrillInterrupted(t *testing.T) {
	labtest.Skip(t)
	s := backuptest.Start(t, "douala")
	s.WaitStreaming(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dest := filepath.Join(s.RestoreDir, "scratch")
	_, err := backup.DrillRestore(ctx, backup.DrillOptions{Live: s.LiveConfig(t, "app"), Runner: cancelAfter{Runner: s.Runner, command: "recover", cancel: cancel},
		Target: s.Target, Scratch: &backup.LocalScratch{Port: backuptest.FreePort(t), RunAs: "postgres"}, Dest: dest, Rows: 100, Progress: progress.New(os.Stderr)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted drill: want the cancellation, got %v", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("the interrupted drill left its scratch directory %s (%v)", dest, err)
	}
}
