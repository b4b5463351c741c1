package backup

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/sites"
)

// The fixtures under testdata/barman are Barman 3.4's JSON answers for a site with
// two base backups, streaming through its slot (captured on this machine).
var (
	fixtureFirstEnd = time.Unix(1796647603, 0).UTC()
	fixtureLastEnd  = time.Unix(1796647641, 0).UTC()
)

func fixtureTarget() Target {
	b := sites.Backup{Server: "cloud", Schedule: sites.DefaultBackupSchedule, RetentionDays: 7, MinimumRedundancy: 1, MaxSlotWALKeepSize: "4GB", User: "barman"}
	return Target{Site: "douala", Host: "127.0.0.1", Port: 55432, Database: "app", User: "barman", Slot: "barman_douala", Backup: b}
}

// TestStatus: what status concludes from Barman's answers, green and each red.
func TestStatus(t *testing.T) {
	t.Parallel()
	fixtures := filepath.Join("testdata", "barman")
	noClients := `{"douala": {"server_lsn": "0/7000000", "streaming_clients": []}}`
	slotLost := `{"douala": {"replication_slot": {"hint": "slot 'barman_douala' not active", "status": "FAILED"}}}`
	for _, tc := range []struct {
		name    string
		fake    fakeBarman
		now     time.Time
		wantOK  bool
		problem string
	}{
		{"green", fakeBarman{dir: fixtures}, fixtureLastEnd.Add(time.Hour), true, ""},
		{"late", fakeBarman{dir: fixtures}, fixtureLastEnd.Add(25 * time.Hour), false, "newest base backup is 25h0m0s old, more than the schedule 24h0m0s"},
		{"unreachable", fakeBarman{dir: fixtures, fail: map[string]error{"list-backups": errors.New("barman at cloud: no such container")}}, fixtureLastEnd, false, "backup server unreachable or failing: barman at cloud: no such container"},
		{"streaming stopped", fakeBarman{dir: fixtures, answers: map[string]string{"replication-status": noClients}}, fixtureLastEnd, false, "WAL streaming is not running"},
		{"slot lost", fakeBarman{dir: fixtures, answers: map[string]string{"check": slotLost}}, fixtureLastEnd, false, "replication slot barman_douala is not healthy (slot 'barman_douala' not active)"},
		{"no backup", fakeBarman{dir: fixtures, answers: map[string]string{"list-backups": `{"douala": []}`}}, fixtureLastEnd, false, "no base backup: run `sitectl backup run --site douala`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := GetStatus(context.Background(), tc.fake, fixtureTarget(), tc.now)
			if st.OK() != tc.wantOK || !strings.Contains(strings.Join(st.Problems, "\n"), tc.problem) {
				t.Fatalf("want ok=%v with %q, got ok=%v problems %q", tc.wantOK, tc.problem, st.OK(), st.Problems)
			}
			if tc.name != "green" {
				return
			}
			if st.Last == nil || st.Last.ID != "20261207T124718" || st.Last.Duration != 3*time.Second || st.Last.SizeBytes != 30735360 || st.Backups != 2 {
				t.Fatalf("last backup: %+v, backups %d", st.Last, st.Backups)
			}
			if !st.Streaming || !st.SlotOK || !st.WindowFrom.Equal(fixtureFirstEnd) || !st.WindowTo.Equal(tc.now) {
				t.Fatalf("streaming %v slot %v window %s..%s", st.Streaming, st.SlotOK, st.WindowFrom, st.WindowTo)
			}
		})
	}
}

// TestRestoreWindow: a restore time outside the recovery window is one error naming
// the window; inside it, the newest base backup that ended before it is used.
func TestRestoreWindow(t *testing.T) {
	t.Parallel()
	backups := []BaseBackup{{ID: "a", End: fixtureFirstEnd}, {ID: "b", End: fixtureLastEnd}}
	now := fixtureLastEnd.Add(time.Hour)
	for _, tc := range []struct {
		name    string
		backups []BaseBackup
		at      time.Time
		want    string
	}{
		{"before the first backup", backups, fixtureFirstEnd.Add(-time.Second), "outside the recovery window 2026-12-07T12:46:43Z to 2026-12-07T13:47:21Z"},
		{"in the future", backups, now.Add(time.Minute), "outside the recovery window"},
		{"no backup", nil, now, "the site has no base backup yet"},
		{"between the backups", backups, fixtureLastEnd.Add(-time.Second), "a"},
		{"after the last", backups, now, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := pickBackup("douala", tc.backups, tc.at, now)
			got := b.ID
			if err != nil {
				var ow *OutsideWindowError
				if !errors.As(err, &ow) {
					t.Fatalf("want an OutsideWindowError, got %T %v", err, err)
				}
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("want %q, got %q", tc.want, got)
			}
		})
	}
}
