package monitoring_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts/amtest"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestRealPostgresExporter runs Debian's prometheus-postgres-exporter with the
// environment and queries.yaml the stack renders (the service address replaced by a
// real PostgreSQL 15 on loopback): it connects (pg_up 1; the rendered sslmode is one
// its driver takes), loads sitectl's queries and scrapes without error.
func TestRealPostgresExporter(t *testing.T) {
	if testing.Short() {
		t.Skip("real PostgreSQL: skipped under -short")
	}
	topo := stacktest.Load(t, "dev")
	s := topo.Site("douala")
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: s})
	if err != nil {
		t.Fatal(err)
	}
	cfg := stacktest.LoadCompose(t, r)
	var env map[string]*string
	for _, svc := range cfg.Services {
		if svc.Name == "postgres-exporter" {
			env = svc.Environment
		}
	}
	if env == nil {
		t.Fatal("no postgres-exporter service")
	}
	c := pgtest.Start(t, pgtest.Options{Name: "st-pgexporter", User: s.Postgres.User, Password: "exporter-pw", Database: s.Postgres.Database})
	dir := t.TempDir()
	files := map[string]string{"queries.yaml": string(r.Files["queries.yaml"]), "password": "exporter-pw"}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	uri := *env["DATA_SOURCE_URI"]
	if !strings.HasPrefix(uri, "postgres_db:5432/") {
		t.Fatalf("DATA_SOURCE_URI %q does not name the postgres stack's service", uri)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", amtest.FreePort(t))
	startProcessEnv(t, []string{
		"DATA_SOURCE_URI=" + strings.Replace(uri, "postgres_db:5432", fmt.Sprintf("%s:%d", c.Host, c.Port), 1),
		"DATA_SOURCE_USER=" + *env["DATA_SOURCE_USER"],
		"DATA_SOURCE_PASS_FILE=" + filepath.Join(dir, "password"),
		"PG_EXPORTER_EXTEND_QUERY_PATH=" + filepath.Join(dir, "queries.yaml"),
		"PG_EXPORTER_AUTO_DISCOVER_DATABASES=" + *env["PG_EXPORTER_AUTO_DISCOVER_DATABASES"],
	}, "prometheus-postgres-exporter", "--web.listen-address="+addr)
	want := []string{"pg_up 1", "pg_exporter_last_scrape_error 0", `pg_exporter_user_queries_load_error{filename="` + filepath.Join(dir, "queries.yaml")}
	var metrics string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			metrics = string(b)
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(metrics, "\n"+w)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres-exporter metrics lack %q:\n%s", want, grepLines(metrics, "pg_up", "pg_exporter_"))
		}
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "pg_exporter_user_queries_load_error{") && !strings.HasSuffix(line, " 0") {
			t.Errorf("sitectl's queries.yaml did not load: %s", line)
		}
	}
}

func grepLines(s string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
