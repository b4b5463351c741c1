package postgres

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/sites"
)

// A password with the characters a passfile escapes.
const passfilePassword = `pub:pass\word 'x'`

// TestPassFileSubscription, on real PostgreSQL 15: a subscription made with a
// password in its connection string is planned as a connection change to
// passfile=, applied with ALTER SUBSCRIPTION ... CONNECTION, then planned as
// nothing; afterwards subconninfo holds no password, and rows written at the
// publisher still arrive at the subscriber (the apply worker reconnects through
// the passfile). The subscription's owner is sitectl's superuser role: PostgreSQL
// 15 lets only superusers own subscriptions, so "password required" for
// non-superuser owners does not apply.
func TestPassFileSubscription(t *testing.T) {
	pub := pgtest.Start(t, pgtest.Options{Name: "pf-pub", Password: passfilePassword, Settings: map[string]string{"wal_level": "logical"}})
	sub := pgtest.Start(t, pgtest.Options{Name: "pf-sub", Password: "subscriber-pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pc, sc := pub.MustConnect(t), sub.MustConnect(t)
	const table = `CREATE TABLE public.orders (id uuid NOT NULL, site text NOT NULL, PRIMARY KEY (site, id))`
	for _, c := range []*pgx.Conn{pc, sc} {
		if _, err := c.Exec(ctx, table); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pc.Exec(ctx, `CREATE PUBLICATION sitectl_a_to_b FOR TABLE public.orders WHERE (site = 'a')`); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(passfilePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := ConnInfo{Host: pub.Host, Port: pub.Port, Database: "app", User: "sitectl", Password: sites.SecretRef{File: pwFile}}
	withPassword, err := conn.Render()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Exec(ctx, fmt.Sprintf("CREATE SUBSCRIPTION sitectl_a_to_b CONNECTION %s PUBLICATION sitectl_a_to_b WITH (disable_on_error = true)", quoteLiteral(withPassword))); err != nil {
		t.Fatal(err)
	}
	if got := subconninfo(t, sc); !strings.Contains(got, "password=") {
		t.Fatalf("before: subconninfo has no password: the test would prove nothing")
	}

	// The passfile, where the subscriber's server (the postgres OS user) reads it.
	conn.PassFile = filepath.Join(sub.Dir, "pgpass")
	content, err := PassFile([]PassLine{{Prefix: strings.Join([]string{PassEscape(conn.Host), strconv.Itoa(conn.Port), "app", "sitectl"}, ":") + ":", Password: conn.Password}})
	if err != nil {
		t.Fatal(err)
	}
	writeOwnedByPostgres(t, conn.PassFile, content)

	s := Subscription{Site: "b", Name: "sitectl_a_to_b", Flow: Flow{From: "a", To: "b", Filter: "site = 'a'"}, Publication: "sitectl_a_to_b",
		Tables: []string{"public.orders"}, Conn: conn}
	pool := poolOf(t, sub)
	change := planSubscription(ctx, t, pool, pc, s)
	if change == nil || !change.Op.SetConnection {
		t.Fatalf("plan: want a connection change, got %+v", change)
	}
	diff := strings.Join(change.Step.Diff, "\n")
	if !strings.Contains(diff, "password=***") || !strings.Contains(diff, "passfile="+conn.PassFile) || strings.Contains(diff, "pass\\word") {
		t.Errorf("plan diff %q: want the redacted old connection and the passfile, never the password", diff)
	}
	want, err := s.Conn.Render()
	if err != nil {
		t.Fatal(err)
	}
	if err := execLimited(ctx, pool, "ALTER SUBSCRIPTION sitectl_a_to_b CONNECTION "+quoteLiteral(want), true, "a"); err != nil {
		t.Fatal(err)
	}
	if got := subconninfo(t, sc); strings.Contains(got, "password") || !strings.Contains(got, "passfile=") {
		t.Errorf("after: subconninfo = %q, want passfile= and no password", Redact(got))
	}
	if c := planSubscription(ctx, t, pool, pc, s); c != nil {
		t.Errorf("second plan: want nothing, got %s: %v", c.Step.Name, c.Step.Diff)
	}
	// The apply worker reconnects with the new connection: through the passfile.
	if _, err := pc.Exec(ctx, `INSERT INTO public.orders VALUES ('0190a000-0000-7000-8000-000000000001', 'a')`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := sc.QueryRow(ctx, `SELECT count(*) FROM public.orders WHERE site = 'a'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the row written at the publisher did not arrive through the passfile connection; subscriber log:\n%s", sub.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Contains(sub.Log(), "pass\\word") || strings.Contains(pub.Log(), "pass\\word") {
		t.Error("a server log holds the password")
	}
}

// planSubscription diffs s against the subscriber's live catalog (the publisher
// read for its slot) and returns the subscription's change, nil when none.
func planSubscription(ctx context.Context, t *testing.T, sub *pgxpool.Pool, pub *pgx.Conn, s Subscription) *Change {
	t.Helper()
	live, err := ReadLive(ctx, sub, "b", s.Tables)
	if err != nil {
		t.Fatal(err)
	}
	publisher, err := ReadLive(ctx, pub, "a", s.Tables)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := diffSubscription(&s, live.Subscriptions[s.Name], publisher, Extras{})
	if !ok {
		return nil
	}
	if c.Op.Kind != OpAlterSubscription || c.Step.Action != plan.Update {
		t.Fatalf("plan: %s %s, want an alter", c.Op.Kind, c.Step.Action)
	}
	return &c
}

func subconninfo(t *testing.T, c *pgx.Conn) string {
	t.Helper()
	var s string
	if err := c.QueryRow(context.Background(), `SELECT subconninfo FROM pg_subscription WHERE subname = 'sitectl_a_to_b'`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// poolOf is a pool on the cluster as sitectl's role over TCP (scram-sha-256).
func poolOf(t *testing.T, c *pgtest.Cluster) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=app user=%s sslmode=disable", c.Host, c.Port, c.Opts.User))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Password = c.Opts.Password
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// writeOwnedByPostgres writes a 0600 file the postgres OS user owns, as the swarm
// mounts the pgpass secret (uid 999, mode 0600).
func writeOwnedByPostgres(t testing.TB, path string, data []byte) {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// TestAppRole, on real PostgreSQL 15: the application role is planned (create),
// made (no superuser, LOGIN, rows of the schema's tables only), then planned as
// nothing; it logs in over TCP with its password, reads and writes rows, and
// cannot create a table, truncate one, or touch sitectl's bookkeeping. A new
// password, a SUPERUSER attribute and a table created later by sitectl's role are
// each planned, and made right again.
func TestAppRole(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Name: "approle", Password: "admin-pw"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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
	ref := sites.SecretRef{Env: "TEST_APP_PW"}
	planRole := func(pw string) (plan.Action, []string) {
		t.Helper()
		st, err := ReadRole(ctx, pool, "app", "sitectl")
		if err != nil {
			t.Fatal(err)
		}
		return st.Diff("app", []byte(pw), ref)
	}
	if a, d := planRole("app-pw-1"); a != plan.Create || len(d) == 0 {
		t.Fatalf("first plan: %s %v, want create", a, d)
	}
	if err := ApplyRole(ctx, pool, "app", "sitectl", []byte("app-pw-1")); err != nil {
		t.Fatal(err)
	}
	if _, d := planRole("app-pw-1"); len(d) != 0 {
		t.Fatalf("second plan: %v, want nothing", d)
	}
	app := appConn(t, c, "app-pw-1")
	if _, err := app.Exec(ctx, `INSERT INTO public.orders VALUES ('0190a000-0000-7000-8000-000000000001', 'a')`); err != nil {
		t.Errorf("insert as app: %v", err)
	}
	if _, err := app.Exec(ctx, `UPDATE public.orders SET site = site`); err != nil {
		t.Errorf("update as app: %v", err)
	}
	for _, s := range []string{`CREATE TABLE public.mine (x int)`, `TRUNCATE public.orders`, `SELECT * FROM public.sitectl_schema`, `CREATE ROLE other`} {
		if _, err := app.Exec(ctx, s); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as app: %v, want permission denied", s, err)
		}
	}
	// Drift: a new password, a superuser attribute, a table made later by sitectl.
	if _, err := pool.Exec(ctx, `ALTER ROLE app SUPERUSER`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE public.customers (id uuid NOT NULL, site text NOT NULL, PRIMARY KEY (site, id))`); err != nil {
		t.Fatal(err)
	}
	_, d := planRole("app-pw-2")
	got := strings.Join(d, "\n")
	for _, w := range []string{"attribute SUPERUSER → NOSUPERUSER", "password: set from env:TEST_APP_PW"} {
		if !strings.Contains(got, w) {
			t.Errorf("drift plan %q: want %q", got, w)
		}
	}
	if strings.Contains(got, "customers") {
		t.Errorf("drift plan %q: a table sitectl's role made later is granted by the default privileges", got)
	}
	if strings.Contains(got, "app-pw") {
		t.Errorf("plan shows the password: %q", got)
	}
	if err := ApplyRole(ctx, pool, "app", "sitectl", []byte("app-pw-2")); err != nil {
		t.Fatal(err)
	}
	if _, d := planRole("app-pw-2"); len(d) != 0 {
		t.Errorf("plan after the fix: %v, want nothing", d)
	}
	if _, err := appConn(t, c, "app-pw-2").Exec(ctx, `SELECT count(*) FROM public.customers`); err != nil {
		t.Errorf("read customers as app: %v", err)
	}
	// The fencing table, made by a rebuild after the role's default privileges, stays
	// sitectl's: an application that could write it could un-fence an old instance.
	if err := writeGeneration(ctx, pool, Generation{Site: "a", Generation: 1, State: GenActive}); err != nil {
		t.Fatal(err)
	}
	// A grant to PUBLIC (not a role one can name with %I) is revoked too.
	if _, err := pool.Exec(ctx, `GRANT SELECT ON `+GenerationTable+` TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	if err := writeGeneration(ctx, pool, Generation{Site: "a", Generation: 1, State: GenActive}); err != nil {
		t.Fatalf("record a generation with a grant to PUBLIC: %v", err)
	}
	for _, s := range []string{`SELECT * FROM ` + GenerationTable, `UPDATE ` + GenerationTable + ` SET generation = 0`} {
		if _, err := appConn(t, c, "app-pw-2").Exec(ctx, s); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as app: %v, want permission denied", s, err)
		}
	}
	if _, d := planRole("app-pw-2"); len(d) != 0 {
		t.Errorf("plan after the fencing table: %v, want nothing", d)
	}
	// Verifiers PostgreSQL made itself, SCRAM and md5, are read right.
	for _, enc := range []string{"scram-sha-256", "md5"} {
		if _, err := pool.Exec(ctx, "SET log_statement = 'none'; SET password_encryption = '"+enc+"'; ALTER ROLE app PASSWORD 'app-pw-3'; RESET password_encryption"); err != nil {
			t.Fatal(err)
		}
		if _, d := planRole("app-pw-3"); len(d) != 0 {
			t.Errorf("%s verifier made by the server: plan %v, want nothing", enc, d)
		}
		if _, d := planRole("app-pw-4"); len(d) != 1 {
			t.Errorf("%s verifier, another password: plan %v, want the password line", enc, d)
		}
	}
	if strings.Contains(c.Log(), "app-pw") || strings.Contains(c.Log(), "SCRAM-SHA-256$") {
		t.Error("the server log holds the password or its verifier")
	}
}

func appConn(t *testing.T, c *pgtest.Cluster, pw string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=app user=app sslmode=disable", c.Host, c.Port))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = pw
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("log in as app: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// TestPasswordMatches: SCRAM and md5 verifiers as PostgreSQL writes them.
func TestPasswordMatches(t *testing.T) {
	v, err := ScramVerifier([]byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		verifier, pw string
		want         bool
	}{
		{v, "s3cret", true},
		{v, "s3creT", false},
		{"md5c4b4ac3b6d4f9e3b2c1c5c0c6c1e0d2a", "s3cret", false},
		{"", "s3cret", false},
		{"SCRAM-SHA-256$x:y$z:w", "s3cret", false},
	} {
		if got := PasswordMatches(tc.verifier, "app", []byte(tc.pw)); got != tc.want {
			t.Errorf("PasswordMatches(%.20s…, %q) = %v, want %v", tc.verifier, tc.pw, got, tc.want)
		}
	}
}
