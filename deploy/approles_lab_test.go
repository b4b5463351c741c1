package deploy

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/lab/labreach"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// labNotes is an app using the site's PostgreSQL (database: postgres), on the lab's
// real PostgreSQL image for its psql: it connects with what sitectl gives it
// (DATABASE_HOST, _PORT, _NAME, _USER and the password file), writes a row of
// lab_rows naming its role and reads it back, and only then reports healthy.
const labNotes = `services:
  api:
    image: sitectl-lab/postgres:15
    entrypoint: ["sh", "-c"]
    command:
      - |
        read -r PGPASSWORD < "$$DATABASE_PASSWORD_FILE"; export PGPASSWORD
        until psql -h "$$DATABASE_HOST" -p "$$DATABASE_PORT" -U "$$DATABASE_USER" -d "$$DATABASE_NAME" -v ON_ERROR_STOP=1 -Atc "insert into lab_rows (id, site, body) values (gen_random_uuid(), 'douala', 'written by ' || current_user)" -c "select body from lab_rows where body = 'written by ' || current_user limit 1"; do sleep 1; done
        : > /tmp/ok
        while :; do sleep 3600; done
    healthcheck:
      test: ["CMD", "sh", "-c", "[ -f /tmp/ok ]"]
      interval: 1s
      timeout: 2s
      retries: 60
x-sitectl:
  sites: [douala]
  database: postgres
`

// labAgenda starts after notes (x-sitectl.after). Its name sorts before notes, so
// without the key it would be deployed first.
const labAgenda = `services:
  web:
    image: sitectl-lab/cadvisor:standin
    environment:
      STANDIN_SERVICE: cadvisor
      STANDIN_PORTS: "8080"
x-sitectl:
  sites: [douala]
  after: [notes]
`

// labAppRoleAndOrder (TestLabDeploy, after its prune left douala with postgres
// only): two fixture apps at douala, notes (database: postgres) and agenda (after:
// [notes]). notes's task connects as its own role app_notes with the secret's
// password and writes and reads a row (the row in the database names app_notes);
// agenda's service is created only once notes's task runs (healthy); with both
// folders removed, deploy --prune removes them and drops the role.
func labAppRoleAndOrder(t *testing.T, e *labEnv, cur []string) {
	appsDir := filepath.Join(t.TempDir(), "apps")
	for name, body := range map[string]string{"notes": labNotes, "agenda": labAgenda} {
		if err := os.MkdirAll(filepath.Join(appsDir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(appsDir, name, "compose.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(t.TempDir(), "notes-db-password")
	if err := os.WriteFile(pw, []byte("notes-lab-pw-only-in-the-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T) *sites.Topology {
		t.Helper()
		names, err := apps.Names(appsDir)
		if err != nil {
			t.Fatal(err)
		}
		set := append(append(slices.Clone(fast), cur...), "douala:secrets.notes-db-password.file="+pw)
		topo, err := sites.Load(sites.Options{Dir: e.dir, Env: "lab", Environ: []string{}, Set: set, KnownStacks: append(names, sites.KnownStacks...)})
		if err != nil {
			t.Fatal(err)
		}
		labreach.Install(topo)
		topo.Site("douala").Stacks = []string{"postgres"} // as the prune above left it
		list, ps := apps.Load(apps.Options{Dir: appsDir, Topo: topo, Environ: []string{}})
		if len(ps) > 0 {
			t.Fatal(ps)
		}
		topo.Apps = list
		return topo
	}
	topo := load(t)
	site := topo.Site("douala")
	c := e.manager(t, topo, "douala")
	ctx := context.Background()
	roleExists := func(t *testing.T) bool {
		t.Helper()
		var n int
		if err := withDB(ctx, site, func(db *pgxpool.Pool) error {
			return db.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = 'app_notes'").Scan(&n)
		}); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	// The tables are the schema file's, which the replication part applies (this
	// test deploys the swarm, stacks and apps parts only): applied here as it would.
	schema, err := postgres.LoadSchema(topo, site)
	if err != nil || schema == nil {
		t.Fatalf("schema of douala: %v (%v)", schema, err)
	}
	if err := withDB(ctx, site, func(db *pgxpool.Pool) error { return schema.Apply(ctx, db, site.Postgres.Tables) }); err != nil {
		t.Fatalf("apply %s: %v", schema.Path, err)
	}
	start := time.Now()
	sel, _ := topo.Select("douala")
	if err := Deploy(ctx, topo, sel, ownParts, testOpts(t))[0].Err(); err != nil {
		t.Fatalf("deploy: %v\nnotes_api's log:\n%s", err, serviceLog(t, c, "notes_api"))
	}
	t.Logf("deploy of notes and agenda at douala: %s", time.Since(start).Round(100*time.Millisecond))
	svcs := services(t, c)
	for _, name := range []string{"notes_api", "agenda_web"} {
		if st := svcs[name].ServiceStatus; st == nil || st.RunningTasks != 1 {
			t.Fatalf("%s: status %+v, want 1 running task", name, st)
		}
	}

	t.Run("notes connects as app_notes and reads and writes", func(t *testing.T) {
		env := svcs["notes_api"].Spec.TaskTemplate.ContainerSpec.Env
		if !slices.Contains(env, "DATABASE_USER=app_notes") {
			t.Errorf("notes_api env %v, want DATABASE_USER=app_notes", env)
		}
		var n int
		if err := withDB(ctx, site, func(db *pgxpool.Pool) error {
			return db.QueryRow(ctx, "SELECT count(*) FROM lab_rows WHERE site = 'douala' AND body = 'written by app_notes'").Scan(&n)
		}); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Error("no row of lab_rows written by app_notes: notes did not write as its role")
		}
		if !roleExists(t) {
			t.Error("role app_notes does not exist after the deploy")
		}
	})

	t.Run("agenda (after: [notes]) is created once notes runs", func(t *testing.T) {
		tasks, err := c.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", svcs["notes_api"].ID)})
		if err != nil {
			t.Fatal(err)
		}
		var running time.Time
		for _, k := range tasks.Items {
			if k.Status.State == swarm.TaskStateRunning {
				running = k.Status.Timestamp
			}
		}
		created := svcs["agenda_web"].CreatedAt
		t.Logf("notes_api's task running (healthy) at %s, agenda_web created at %s", running.Format(time.StampMilli), created.Format(time.StampMilli))
		if running.IsZero() || created.Before(running) {
			t.Errorf("agenda_web created at %s, before notes_api's task ran (%s): x-sitectl.after not kept", created, running)
		}
	})

	t.Run("folders removed, deploy --prune removes the apps and drops the role", func(t *testing.T) {
		for _, name := range []string{"notes", "agenda"} {
			if err := os.RemoveAll(filepath.Join(appsDir, name)); err != nil {
				t.Fatal(err)
			}
		}
		gone := load(t)
		sel, _ := gone.Select("douala")
		if err := Deploy(ctx, gone, sel, ownParts, Options{Environ: []string{}, Prune: true, Poll: testOpts(t).Poll, Progress: testOpts(t).Progress})[0].Err(); err != nil {
			t.Fatalf("deploy --prune: %v", err)
		}
		svcs := services(t, c)
		for _, name := range []string{"notes_api", "agenda_web"} {
			if _, ok := svcs[name]; ok {
				t.Errorf("%s still exists after deploy --prune", name)
			}
		}
		if roleExists(t) {
			t.Error("role app_notes still exists after deploy --prune")
		}
	})
}

// serviceLog returns the last lines a service's tasks logged (for a failure).
func serviceLog(t *testing.T, c *client.Client, service string) string {
	t.Helper()
	r, err := c.ServiceLogs(context.Background(), service, client.ServiceLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "40"})
	if err != nil {
		return err.Error()
	}
	defer func() { _ = r.Close() }()
	b, err := io.ReadAll(r)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// TestAppRoleLabFixtures: the apps labAppRoleAndOrder deploys load without a
// problem on the example's sites (so the lab run fails only on the lab): notes
// uses the database as app_notes, agenda starts after notes.
func TestAppRoleLabFixtures(t *testing.T) {
	appsDir := filepath.Join(t.TempDir(), "apps")
	for name, body := range map[string]string{"notes": labNotes, "agenda": labAgenda} {
		if err := os.MkdirAll(filepath.Join(appsDir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(appsDir, name, "compose.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}, KnownStacks: append([]string{"notes", "agenda"}, sites.KnownStacks...),
		Set: []string{"douala:secrets.notes-db-password.env=NOTES_DB_PW"}})
	if err != nil {
		t.Fatal(err)
	}
	list, ps := apps.Load(apps.Options{Dir: appsDir, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	byName := map[string]*sites.App{}
	for _, a := range list {
		byName[a.Name] = a
	}
	if a := byName["notes"]; a == nil || a.Database == nil || a.Database.User != "app_notes" {
		t.Errorf("notes: %+v, want the database as app_notes", a)
	}
	if a := byName["agenda"]; a == nil || !slices.Equal(a.After, []string{"notes"}) {
		t.Errorf("agenda: %+v, want after [notes]", a)
	}
}
