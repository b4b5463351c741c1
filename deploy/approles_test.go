package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
)

// TestAppRoleStep, against real PostgreSQL 15 (the site's database) and an
// in-memory swarm: an app declaring `database: postgres` gets a step making its
// role (app_notes) first in its group; deploy makes it and the app can log in with
// the password of secrets.notes-db-password; a second plan has no role step; with
// the app's folder removed, `deploy --prune` plans and applies the role's drop in
// the group "app roles"; a database that does not answer is planned as a create
// with a note.
func TestAppRoleStep(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Name: "deploy-approle", Password: "admin-pw"})
	t.Setenv("SITECTL_PG_PASSWORD", "admin-pw")
	t.Setenv("NOTES_DB_PW", "notes-pw-only-in-the-secret")
	dir := filepath.Join(t.TempDir(), "apps")
	if err := os.MkdirAll(filepath.Join(dir, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	body := "services:\n  api:\n    image: registry.example.com/notes:1\nx-sitectl:\n  port: 8080\n  sites: [douala]\n  database: postgres\n  routes: [{path: /notes}]\n"
	if err := os.WriteFile(filepath.Join(dir, "notes", "compose.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := sites.Load(sites.Options{Dir: "../sites", Env: "dev", Environ: []string{}, KnownStacks: append([]string{"notes"}, sites.KnownStacks...),
		Set: []string{"douala:secrets.notes-db-password.env=NOTES_DB_PW"}})
	if err != nil {
		t.Fatal(err)
	}
	site := topo.Site("douala")
	site.Postgres.Host, site.Postgres.Port, site.Postgres.SSLMode = c.Host, c.Port, "disable"
	site.Stacks = []string{"postgres"}
	list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo, Environ: []string{}})
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	topo.Apps = list
	eng := pruneSwarm{&memSwarm{}}
	parts := []plan.Part{Stacks, Apps}
	opts := Options{Environ: []string{}, Poll: 5 * time.Millisecond,
		Open: func(context.Context, *sites.Site) (Engine, func(), error) { return eng, func() {}, nil }}

	roleSteps := func(p *plan.Plan) []plan.Step {
		t.Helper()
		if f := p.Failed(); len(f) > 0 {
			t.Fatalf("plan failed: %+v", f)
		}
		var out []plan.Step
		for _, st := range p.Sites[0].Steps {
			if st.Component == ComponentPostgres {
				out = append(out, st)
			}
		}
		return out
	}
	p := Plan(context.Background(), topo, []*sites.Site{site}, parts, opts)
	rs := roleSteps(p)
	if len(rs) != 1 || rs[0].Action != plan.Create || rs[0].Name != "app role app_notes" || rs[0].Group != "app notes" {
		t.Fatalf("role steps %+v, want one create of app role app_notes in group app notes", rs)
	}
	var text bytes.Buffer
	if err := p.Render(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "  app notes:\n  + postgres app role app_notes\n") || strings.Contains(text.String(), "notes-pw") {
		t.Errorf("plan: want the role first in the app's group, no password:\n%s", text.String())
	}
	if err := Deploy(context.Background(), topo, []*sites.Site{site}, parts, opts)[0].Err(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=app user=app_notes sslmode=disable", c.Host, c.Port))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = "notes-pw-only-in-the-secret"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("log in as app_notes after the deploy: %v", err)
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if rs := roleSteps(Plan(ctx, topo, []*sites.Site{site}, parts, opts)); len(rs) != 0 {
		t.Errorf("second plan: role steps %+v, want none", rs)
	}

	// The app's folder removed: --prune drops its role.
	topo.Apps = nil
	opts.Prune = true
	rs = roleSteps(Plan(ctx, topo, []*sites.Site{site}, parts, opts))
	if len(rs) != 1 || rs[0].Action != plan.Remove || rs[0].Name != "app role app_notes" || rs[0].Group != appRolesGroup {
		t.Fatalf("prune plan: role steps %+v, want the removal of app role app_notes in group %q", rs, appRolesGroup)
	}
	if err := Deploy(ctx, topo, []*sites.Site{site}, parts, opts)[0].Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.ConnectConfig(ctx, cfg); err == nil || !strings.Contains(err.Error(), "app_notes") {
		t.Errorf("log in as app_notes after the prune: %v, want refused", err)
	}
	if rs := roleSteps(Plan(ctx, topo, []*sites.Site{site}, parts, opts)); len(rs) != 0 {
		t.Errorf("plan after the prune: role steps %+v, want none", rs)
	}

	// A database that does not answer yet: planned as a create, with a note.
	topo.Apps, opts.Prune = list, false
	site.Postgres.Port = closedPort(t)
	rs = roleSteps(Plan(ctx, topo, []*sites.Site{site}, parts, opts))
	if len(rs) != 1 || rs[0].Action != plan.Create || !strings.Contains(rs[0].Note, "does not answer yet") {
		t.Errorf("plan with the database down: role steps %+v, want a create noting the database does not answer", rs)
	}
}

// closedPort is a local TCP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// pruneSwarm is a memSwarm that also removes services, networks and secrets (a
// deploy with --prune).
type pruneSwarm struct{ *memSwarm }

func (m pruneSwarm) ServiceRemove(_ context.Context, id string, _ client.ServiceRemoveOptions) (client.ServiceRemoveResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.services = slices.DeleteFunc(m.services, func(s swarm.Service) bool { return s.ID == id || s.Spec.Name == id })
	return client.ServiceRemoveResult{}, nil
}

func (m pruneSwarm) NetworkRemove(_ context.Context, id string, _ client.NetworkRemoveOptions) (client.NetworkRemoveResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.networks = slices.DeleteFunc(m.networks, func(n network.Summary) bool { return n.ID == id || n.Name == id })
	return client.NetworkRemoveResult{}, nil
}

func (m pruneSwarm) SecretRemove(_ context.Context, id string, _ client.SecretRemoveOptions) (client.SecretRemoveResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets = slices.DeleteFunc(m.secrets, func(s swarm.Secret) bool { return s.ID == id })
	return client.SecretRemoveResult{}, nil
}

// TestSharedRoleNoStep: an app connecting as the site's application role
// (user: postgres.app_user) gets no app role step: the postgres stack keeps that
// role (and a database that does not answer is never asked).
func TestSharedRoleNoStep(t *testing.T) {
	old := connectDB
	t.Cleanup(func() { connectDB = old })
	connectDB = nil // a call would panic
	site := &sites.Site{Name: "douala", Postgres: sites.Postgres{AppUser: "app"}}
	a := &sites.App{Name: "django-api", Sites: map[string]sites.AppSite{"douala": {Replicas: 1}},
		Database: &sites.AppDatabase{Engine: "postgres", User: sites.AppUserRef}}
	st, err := appRoleStep(context.Background(), site, a)
	if st != nil || err != nil {
		t.Errorf("step %+v, err %v; want none", st, err)
	}
}
