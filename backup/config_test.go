package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/sites"
)

// exampleTopo is the example configuration with the design's backup layout: the
// hub backs up both spokes, douala backs up the hub.
func exampleTopo(t *testing.T) *sites.Topology {
	t.Helper()
	topo, err := sites.Load(sites.Options{Dir: filepath.Join("..", "sites"), Env: "production", Environ: []string{},
		Set: []string{"douala:backup.server=cloud", "yaounde:backup.server=cloud", "yaounde:backup.retention_days=14",
			"yaounde:backup.schedule=12h", "cloud:backup.server=douala"}})
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestRenderedBarmanConfig: goldens of every Barman server's configuration.
func TestRenderedBarmanConfig(t *testing.T) {
	t.Parallel()
	topo := exampleTopo(t)
	if got := strings.Join(Servers(topo), ","); got != "cloud,douala" {
		t.Fatalf("backup servers: got %s, want cloud,douala", got)
	}
	golden.Assert(t, "barman.conf.golden", GlobalConf(DefaultGlobal))
	for _, server := range Servers(topo) {
		var b strings.Builder
		for _, tg := range Targets(topo, server) {
			fmt.Fprintf(&b, "# --- %s/barman.d/%s.conf\n%s", server, tg.Site, ServerConf(tg))
		}
		golden.AssertString(t, server+".barman.d.golden", b.String())
	}
}

// TestDatabaseSide: the pg_hba lines admit only the backup server's LAN, for the
// replication role, with scram; the role is not a superuser; the password is only in
// the statement and the password file that carry it.
func TestDatabaseSide(t *testing.T) {
	t.Parallel()
	topo := exampleTopo(t)
	douala, cloud := topo.Site("douala"), topo.Site("cloud")
	got := strings.Join(HBALines(douala, cloud), "\n")
	want := "host replication barman 10.30.0.0/24 scram-sha-256\nhost app barman 10.30.0.0/24 scram-sha-256"
	if got != want {
		t.Fatalf("pg_hba lines of douala for cloud:\n got %s\nwant %s", got, want)
	}
	sql := strings.Join(RoleSQL("barman"), ";\n")
	for _, w := range []string{"LOGIN REPLICATION", "pg_backup_start(text, boolean)", "pg_read_all_settings"} {
		if !strings.Contains(sql, w) {
			t.Errorf("role SQL lacks %q:\n%s", w, sql)
		}
	}
	if strings.Contains(strings.ToUpper(sql), "SUPERUSER") {
		t.Errorf("role SQL makes a superuser:\n%s", sql)
	}
	if got := PasswordSQL("barman", []byte("it's")); got != `ALTER ROLE "barman" PASSWORD 'it''s'` {
		t.Errorf("password statement quoting: %s", got)
	}
	tg := TargetOf(douala)
	if got := PgpassLine(tg, []byte(`a:b\c`)); got != `10.10.0.12:5432:*:barman:a\:b\\c`+"\n" {
		t.Errorf("pgpass line escaping: %q", got)
	}
	if conf := string(ServerConf(tg)); strings.Contains(conf, "password") {
		t.Errorf("the Barman configuration names a password:\n%s", conf)
	}
}

// fakeBarman answers barman commands from testdata/barman/<command>.json, or with
// the error given for a command.
type fakeBarman struct {
	dir  string
	fail map[string]error
	// answers replace a command's answer.
	answers map[string]string
}

func (f fakeBarman) Name() string { return "barman at cloud" }

func (f fakeBarman) Barman(_ context.Context, args ...string) ([]byte, error) {
	cmd := args[2] // -f json <command>
	if err := f.fail[cmd]; err != nil {
		return nil, err
	}
	if a, ok := f.answers[cmd]; ok {
		return []byte(a), nil
	}
	b, err := os.ReadFile(filepath.Join(f.dir, cmd+".json"))
	if err != nil {
		return nil, fmt.Errorf("fake barman: no answer for %v", args)
	}
	return b, nil
}
