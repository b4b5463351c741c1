package backup_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/backup"
	"github.com/sitectl/sitectl/lab/labtest"
	"github.com/sitectl/sitectl/plan"
	pgrepl "github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
)

// TestLabBackupDatabasePart: the backup database side against a real PostgreSQL
// 15: the plan creates the role, the pg_hba block and the slot; applied, the role
// has LOGIN REPLICATION and the backup grants (not a superuser) with
// backup.password, PostgreSQL parsed the pg_hba lines, the slot is physical and
// reserves WAL; a second plan has no step. With no one streaming from it, WAL past
// max_slot_wal_keep_size (1MB here) loses the slot: status says so, and the plan
// re-creates it.
func TestLabBackupDatabasePart(t *testing.T) {
	labtest.Skip(t)
	ctx := context.Background()
	c := pgtest.Start(t, pgtest.Options{Name: "douala", Password: "admin-pw", Database: "app",
		Settings: map[string]string{"max_slot_wal_keep_size": "1MB", "wal_keep_size": "0"}})
	t.Setenv("SITECTL_PG_PASSWORD", "admin-pw")
	t.Setenv("SITECTL_BACKUP_PASSWORD", "barman-pw")
	topo, err := sites.Load(sites.Options{Dir: filepath.Join("..", "sites"), Env: "production",
		Set: []string{"douala:backup.server=cloud", "douala:postgres.host=" + c.Host, "douala:postgres.port=" + strconv.Itoa(c.Port),
			"douala:postgres.sslmode=disable", "douala:postgres.max_slot_wal_keep_size=1MB"}})
	if err != nil {
		t.Fatal(err)
	}
	douala := topo.Site("douala")
	planApply := func(apply bool) []plan.Step {
		t.Helper()
		steps, err := backup.Part{}.Plan(ctx, topo, douala)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			if !apply {
				break
			}
			if err := s.Apply(ctx); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		return steps
	}
	if got, want := names(planApply(true)), "create role barman; create pg_hba barman from cloud; create slot barman_douala"; got != want {
		t.Fatalf("first plan: %q, want %q", got, want)
	}
	if steps := planApply(false); len(steps) != 0 {
		t.Fatalf("second plan after deploy: %s", names(steps))
	}
	pool, err := pgrepl.Connect(ctx, douala)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st, err := backup.ReadDB(ctx, pool, "barman", "barman_douala")
	if err != nil {
		t.Fatal(err)
	}
	var super bool
	if err := pool.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = 'barman'").Scan(&super); err != nil || super {
		t.Fatalf("barman is a superuser (%v) or unreadable: %v", super, err)
	}
	if !st.RoleExists || len(st.Missing) != 0 || !pgrepl.PasswordMatches(st.Verifier, "barman", []byte("barman-pw")) {
		t.Fatalf("role after deploy: exists %v, missing %v, password matches %v", st.RoleExists, st.Missing, pgrepl.PasswordMatches(st.Verifier, "barman", []byte("barman-pw")))
	}
	var rules int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_hba_file_rules WHERE error IS NULL AND user_name = '{barman}' AND address = $1 AND auth_method = 'scram-sha-256'`,
		strings.SplitN(topo.Site("cloud").LAN, "/", 2)[0]).Scan(&rules); err != nil || rules != 2 {
		t.Fatalf("pg_hba rules for barman from cloud's LAN as PostgreSQL reads them: %d (%v), want 2", rules, err)
	}
	if st.Slot == nil || st.Slot.Type != "physical" || st.Slot.WALStatus != "reserved" || st.KeepSize != 1<<20 {
		t.Fatalf("slot after deploy: %+v, max_slot_wal_keep_size %d", st.Slot, st.KeepSize)
	}

	// Nobody streams from the slot: write and switch WAL past 1MB, checkpoint.
	if _, err := pool.Exec(ctx, "CREATE TABLE filler (v text)"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := pool.Exec(ctx, "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 3000); SELECT pg_switch_wal(); CHECKPOINT"); err != nil {
			t.Fatal(err)
		}
	}
	slot, err := backup.ReadSlot(ctx, pool, "barman_douala")
	if err != nil || !slot.Lost() {
		t.Fatalf("slot after WAL past max_slot_wal_keep_size with no one streaming: %+v, %v (want lost)", slot, err)
	}
	var status backup.Status
	status.Site = "douala"
	status.AddSlot(slot, douala.Backup.MaxSlotWALKeepSize, nil)
	if status.OK() || !strings.Contains(strings.Join(status.Problems, "\n"), "slot barman_douala is lost: it passed max_slot_wal_keep_size 1MB") {
		t.Fatalf("status with the slot lost: %v", status.Problems)
	}
	steps := planApply(true)
	if got := names(steps); got != "update slot barman_douala" || !strings.Contains(steps[0].Note, "passed max_slot_wal_keep_size 1MB") {
		t.Fatalf("plan with the slot lost: %q (%s)", got, steps[0].Note)
	}
	if slot, err := backup.ReadSlot(ctx, pool, "barman_douala"); err != nil || slot == nil || slot.WALStatus != "reserved" {
		t.Fatalf("slot after the re-creating deploy: %+v, %v", slot, err)
	}
	if steps := planApply(false); len(steps) != 0 {
		t.Fatalf("plan after the slot was re-created: %s", names(steps))
	}
}

func names(steps []plan.Step) string {
	var out []string
	for _, s := range steps {
		out = append(out, string(s.Action)+" "+s.Name)
	}
	return strings.Join(out, "; ")
}
