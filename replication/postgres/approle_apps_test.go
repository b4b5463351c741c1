package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
)

// TestAppRoleOfApp, on real PostgreSQL 15: an app's role is planned (create, marked
// as the app's), made (SCRAM verifier, no superuser, the rows of the tables of
// schema public, nothing of sitectl_schema or the fencing table), then planned as
// nothing; AppRoles lists it as the app's; a role made outside sitectl is adopted;
// DropAppRole drops it with its grants and default privileges (it can be made
// again), and refuses a role owning a table, which stays.
func TestAppRoleOfApp(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Name: "approle-apps", Password: "admin-pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pool := poolOf(t, c)
	for _, s := range []string{
		`CREATE TABLE public.orders (id uuid NOT NULL, site text NOT NULL, PRIMARY KEY (site, id))`,
		`CREATE TABLE public.sitectl_schema (id int PRIMARY KEY, file text)`,
	} {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeGeneration(ctx, pool, Generation{Site: "a", Generation: 1, State: GenActive}); err != nil {
		t.Fatal(err)
	}
	ref := sites.SecretRef{Env: "NOTES_DB_PW"}
	planRole := func(user, pw string) (plan.Action, []string) {
		t.Helper()
		st, err := ReadAppRole(ctx, pool, user, "sitectl")
		if err != nil {
			t.Fatal(err)
		}
		return st.Diff("notes", user, []byte(pw), ref)
	}
	if a, d := planRole("app_notes", "notes-pw-1"); a != plan.Create || !slices.Contains(d, "marked as app notes's (comment on the role)") {
		t.Fatalf("first plan: %s %v, want create, marked as the app's", a, d)
	}
	if err := ApplyAppRole(ctx, pool, "notes", "app_notes", "sitectl", []byte("notes-pw-1")); err != nil {
		t.Fatal(err)
	}
	if _, d := planRole("app_notes", "notes-pw-1"); len(d) != 0 {
		t.Fatalf("second plan: %v, want nothing", d)
	}
	var super bool
	var verifier string
	if err := pool.QueryRow(ctx, `SELECT rolsuper, rolpassword FROM pg_authid WHERE rolname = 'app_notes'`).Scan(&super, &verifier); err != nil {
		t.Fatal(err)
	}
	if super || !strings.HasPrefix(verifier, "SCRAM-SHA-256$") {
		t.Errorf("app_notes: superuser %v, verifier %.14s…, want no superuser and a SCRAM verifier", super, verifier)
	}
	conn := roleConn(t, c, "app_notes", "notes-pw-1")
	if _, err := conn.Exec(ctx, `INSERT INTO public.orders VALUES ('0190a000-0000-7000-8000-000000000001', 'a')`); err != nil {
		t.Errorf("insert as app_notes: %v", err)
	}
	for _, s := range []string{`SELECT * FROM public.sitectl_schema`, `SELECT * FROM ` + GenerationTable, `CREATE TABLE public.mine (x int)`, `CREATE ROLE other`} {
		if _, err := conn.Exec(ctx, s); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as app_notes: %v, want permission denied", s, err)
		}
	}
	// A role made outside sitectl (another app's migrations, an operator) is adopted.
	if _, err := pool.Exec(ctx, `CREATE ROLE app_legacy LOGIN`); err != nil {
		t.Fatal(err)
	}
	if _, d := planRole("app_legacy", "legacy-pw"); !slices.ContainsFunc(d, func(l string) bool { return strings.HasPrefix(l, "adopt the role") }) {
		t.Errorf("plan of a role made outside sitectl: %v, want it adopted", d)
	}
	if err := ApplyAppRole(ctx, pool, "legacy", "app_legacy", "sitectl", []byte("legacy-pw")); err != nil {
		t.Fatal(err)
	}
	roles, err := AppRoles(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if want := []AppRole{{User: "app_legacy", App: "legacy"}, {User: "app_notes", App: "notes"}}; !slices.Equal(roles, want) {
		t.Errorf("AppRoles %+v, want %+v", roles, want)
	}
	// Drop: grants and default privileges go with it; the role can be made again.
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := DropAppRole(ctx, pool, "app_notes"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = 'app_notes'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("app_notes after the drop: %d roles (%v), want none", n, err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_default_acl WHERE defaclacl::text LIKE '%app_notes%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("default privileges naming app_notes after the drop: %d (%v), want none", n, err)
	}
	if err := ApplyAppRole(ctx, pool, "notes", "app_notes", "sitectl", []byte("notes-pw-2")); err != nil {
		t.Fatalf("make the role again: %v", err)
	}
	// A role owning a table is not dropped: the table is the app's data.
	if _, err := pool.Exec(ctx, `CREATE TABLE public.legacy_data (x int); ALTER TABLE public.legacy_data OWNER TO app_legacy`); err != nil {
		t.Fatal(err)
	}
	if roles, err := AppRoles(ctx, pool); err != nil || len(roles) != 2 || roles[0].Owns != 1 {
		t.Errorf("AppRoles %+v (%v), want app_legacy owning 1 object", roles, err)
	}
	if err := DropAppRole(ctx, pool, "app_legacy"); !errors.Is(err, ErrRoleOwns) {
		t.Errorf("drop a role owning a table: %v, want ErrRoleOwns", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = 'app_legacy'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("app_legacy after the refused drop: %d roles (%v), want it kept", n, err)
	}
	if strings.Contains(c.Log(), "notes-pw") || strings.Contains(c.Log(), "SCRAM-SHA-256$") {
		t.Error("the server log holds a password or its verifier")
	}
}

// roleConn is a connection to the cluster's database app as user over TCP.
func roleConn(t *testing.T, c *pgtest.Cluster, user, pw string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=app user=%s sslmode=disable", c.Host, c.Port, user))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = pw
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}
