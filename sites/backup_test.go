package sites

import (
	"errors"
	"strings"
	"testing"
)

// TestBackupDefaults: a site that names its backup server gets the defaults (the
// slot bound is the server's max_slot_wal_keep_size); a site that does not is not
// backed up.
func TestBackupDefaults(t *testing.T) {
	t.Parallel()
	topo, err := Load(Options{Dir: "sites", FS: exampleFS(t, map[string]string{
		"douala.yaml": mustRead(t, "douala.yaml") + "backup: {server: cloud}\n",
	}), Env: "dev", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	got := topo.Site("douala").Backup
	want := Backup{Server: "cloud", Schedule: DefaultBackupSchedule, RetentionDays: 7, MinimumRedundancy: 1,
		Volume: "barman-douala", MaxSlotWALKeepSize: "2GB", User: "barman", Password: SecretRef{Env: "SITECTL_BACKUP_PASSWORD"}}
	if got != want {
		t.Fatalf("douala backup:\n got %+v\nwant %+v", got, want)
	}
	if b := topo.Site("yaounde").Backup; b.Enabled() {
		t.Fatalf("yaounde names no backup server but is backed up: %+v", b)
	}
	// The same size written another way is the server's setting.
	if _, err := Load(Options{Dir: "sites", FS: exampleFS(t, map[string]string{
		"douala.yaml": mustRead(t, "douala.yaml") + "backup: {server: cloud, max_slot_wal_keep_size: 2048MB}\n",
	}), Env: "dev", Environ: []string{}}); err != nil {
		t.Fatalf("backup.max_slot_wal_keep_size 2048MB with the server's 2GB: %v", err)
	}
	if s := got.SlotName("douala"); s != "barman_douala" {
		t.Fatalf("slot name %q", s)
	}
}

// TestBackupRefusals: each bad backup setting is one problem naming the file, the
// site, the key and what is allowed.
func TestBackupRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, section, key, want string
	}{
		{"self", "{server: douala}", "backup.server", `is "douala", the site itself; backups must be off-site: name another site (cloud, yaounde)`},
		{"unknown site", "{server: clod}", "backup.server", `is "clod", which is not a site (sites: cloud, douala, yaounde)`},
		{"no server", "{retention_days: 3}", "backup.server", "is empty but other backup settings are set"},
		{"schedule", "{server: cloud, schedule: 10m}", "backup.schedule", "is 10m0s; allowed: 1h or more"},
		{"retention", "{server: cloud, retention_days: -2}", "backup.retention_days", "is -2; allowed: 1 or more days"},
		{"redundancy", "{server: cloud, minimum_redundancy: -1}", "backup.minimum_redundancy", "is -1; allowed: 1 or more"},
		{"volume", "{server: cloud, volume: 'my vol'}", "backup.volume", `is "my vol"; a Docker volume name`},
		{"unbounded slot", "{server: cloud, max_slot_wal_keep_size: '-1'}", "backup.max_slot_wal_keep_size", "is -1 (unbounded): a dead backup server would fill douala's disk"},
		{"server slots unbounded", "{server: cloud}", "postgres.max_slot_wal_keep_size", "is -1 (unbounded) on a backed-up site"},
		{"slot size", "{server: cloud, max_slot_wal_keep_size: 4G}", "backup.max_slot_wal_keep_size", `is "4G"; allowed: a size like 4GB`},
		{"slot size not the server's", "{server: cloud, max_slot_wal_keep_size: 4GB}", "backup.max_slot_wal_keep_size", "is 4GB but postgres.max_slot_wal_keep_size is 2GB: PostgreSQL bounds every slot, the backup's too, with that one server setting; drop backup.max_slot_wal_keep_size or set postgres.max_slot_wal_keep_size to 4GB"},
		{"user", "{server: cloud, user: Barman}", "backup.user", `is "Barman"; a PostgreSQL role name`},
		{"docker secret", "{server: cloud, password: {docker_secret: pw}}", "backup.password", "sitectl itself needs this value: reference it by env or file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			douala := mustRead(t, "douala.yaml")
			if tc.key == "postgres.max_slot_wal_keep_size" {
				douala = strings.Replace(douala, "postgres:\n", "postgres:\n  max_slot_wal_keep_size: '-1'\n", 1)
			}
			_, err := Load(Options{Dir: "sites", FS: exampleFS(t, map[string]string{
				"douala.yaml": douala + "backup: " + tc.section + "\n",
			}), Env: "dev", Environ: []string{}})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want problems, got %v", err)
			}
			if len(ps) != 1 || ps[0].Site != "douala" || ps[0].Key != tc.key || !strings.HasPrefix(ps[0].File, "sites/douala.yaml") || !strings.Contains(ps[0].Message, tc.want) {
				t.Fatalf("want one problem of sites/douala.yaml, douala, %s saying %q, got:\n%v", tc.key, tc.want, ps)
			}
		})
	}
}
