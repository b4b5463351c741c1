package backup

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/plan"
	pgrepl "github.com/sitectl/sitectl/replication/postgres"
)

func stepNames(steps []plan.Step) string {
	var out []string
	for _, s := range steps {
		out = append(out, string(s.Action)+" "+s.Name)
	}
	return strings.Join(out, "; ")
}

// TestPartSteps: from what a site's database holds, the database side plans the
// role, the pg_hba block and the slot; nothing once they are right; a lost slot is
// re-created with a note; a wrong password or missing grant updates the role; the
// password never appears in a step.
func TestPartSteps(t *testing.T) {
	topo := exampleTopo(t)
	douala, cloud := topo.Site("douala"), topo.Site("cloud")
	pw := []byte("s3cret-barman")
	hba := "# TYPE DATABASE USER ADDRESS METHOD\nlocal all all scram-sha-256\nhost all all all scram-sha-256\n"

	empty := &DBState{HBA: hba}
	steps := Steps(douala, cloud, empty, pw)
	if got, want := stepNames(steps), "create role barman; create pg_hba barman from cloud; create slot barman_douala"; got != want {
		t.Fatalf("steps on an empty database: %q, want %q", got, want)
	}
	for _, s := range steps {
		if strings.Contains(strings.Join(s.Diff, " ")+s.Note, string(pw)) {
			t.Errorf("step %s shows the password", s.Name)
		}
	}
	if d := strings.Join(steps[1].Diff, "\n"); !strings.Contains(d, "+ host replication barman "+cloud.LAN+" scram-sha-256") {
		t.Errorf("pg_hba diff does not add the replication line from cloud's LAN:\n%s", d)
	}

	verifier, err := pgrepl.ScramVerifier(pw)
	if err != nil {
		t.Fatal(err)
	}
	done := &DBState{RoleExists: true, Verifier: verifier, HBA: WithHBA(hba, HBALines(douala, cloud)), Slot: &SlotState{Name: "barman_douala", Type: "physical", WALStatus: "reserved"}}
	if steps := Steps(douala, cloud, done, pw); len(steps) != 0 {
		t.Fatalf("steps on a database with its backup side: %s", stepNames(steps))
	}
	if WithHBA(done.HBA, HBALines(douala, cloud)) != done.HBA || WithHBA(done.HBA, nil) != hba {
		t.Errorf("the pg_hba block is not replaced in place, or not removed cleanly:\n%s", done.HBA)
	}

	other := *done
	other.Verifier, other.Missing = "", []string{"REPLICATION"}
	other.Slot = &SlotState{Name: "barman_douala", Type: "physical", WALStatus: "lost"}
	steps = Steps(douala, cloud, &other, pw)
	if got, want := stepNames(steps), "update role barman; update slot barman_douala"; got != want {
		t.Fatalf("steps with a missing grant, no password and a lost slot: %q, want %q", got, want)
	}
	if d := strings.Join(steps[0].Diff, "; "); !strings.Contains(d, "grant: REPLICATION") || !strings.Contains(d, "password: set from backup.password (env:SITECTL_BACKUP_PASSWORD)") {
		t.Errorf("role diff: %s", d)
	}
	if !strings.Contains(steps[1].Note, "passed max_slot_wal_keep_size") || !strings.Contains(steps[1].Note, "sitectl backup run --site douala") {
		t.Errorf("lost slot note: %s", steps[1].Note)
	}

	var st Status
	st.Site = "douala"
	st.AddSlot(other.Slot, "2GB", nil)
	if st.OK() || !strings.Contains(st.Problems[0], "slot barman_douala is lost: it passed max_slot_wal_keep_size 2GB") {
		t.Errorf("status with a lost slot: %+v", st)
	}
}
