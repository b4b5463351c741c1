package apps_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sitectl/sitectl/internal/apps"
	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// dbFixtures holds the fixture apps using a database (no Go code names them). They
// are not among testdata/apps: TestLabApps deploys those on sites with no postgres
// stack, where an app using the database is refused.
const dbFixtures = "testdata/dbapps"

// pgPassword is the test's value of the notes app's role's password (NOTES_DB_PW,
// the sites' secrets.notes-db-password).
const pgPassword = "pg-Zq7-only-in-the-secret"

// notesSecret gives the spokes (where notes runs) the secret holding its role's
// password, secrets.notes-db-password, from NOTES_DB_PW.
var notesSecret = []string{"douala:secrets.notes-db-password.env=NOTES_DB_PW", "yaounde:secrets.notes-db-password.env=NOTES_DB_PW"}

// TestDatabase: an app declaring `database: postgres` gets, at each site running
// it, DATABASE_HOST/_PORT/_NAME/_USER and DATABASE_PASSWORD_FILE on its entry
// service, its own role (app_notes, not the site's postgres.user) and that role's
// password (secrets.notes-db-password) as a content-hashed Docker secret; the
// password is the secret's content and nowhere else (compose file, specs, tree).
func TestDatabase(t *testing.T) {
	t.Setenv("SITECTL_PG_PASSWORD", "the-admin-password")
	t.Setenv("NOTES_DB_PW", pgPassword)
	topo := stacktest.WithApps(t, stacktest.Load(t, "production", notesSecret...), dbFixtures)
	if len(topo.Apps) != 1 || topo.Apps[0].Database == nil {
		t.Fatalf("apps %+v, want one using a database", topo.Apps)
	}
	a := topo.Apps[0]
	for _, s := range topo.Sites {
		_, runs := a.Sites[s.Name]
		if runs == (s.Name == topo.Hub) {
			t.Fatalf("%s runs at %v, want the spokes", a.Name, a.Sites)
		}
		if !runs {
			continue
		}
		in := stacks.Input{Topo: topo, Site: s}
		r, err := stacks.RenderApp(in, a)
		if err != nil {
			t.Fatal(err)
		}
		golden.Assert(t, "database/"+s.Name+"-"+a.Name+".yaml", r.Compose)
		d, err := stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{Key: []byte("test-cluster")})
		if err != nil {
			t.Fatal(err)
		}
		svc := d.Services[0].Spec
		env := svc.TaskTemplate.ContainerSpec.Env
		for _, want := range []string{"DATABASE_HOST=postgres_db", "DATABASE_PORT=5432", "DATABASE_NAME=" + s.Postgres.Database,
			"DATABASE_USER=app_notes", "DATABASE_PASSWORD_FILE=/run/secrets/database-password",
			"DATABASE_URL=postgres://app_notes@postgres_db:5432/" + s.Postgres.Database + "?sslmode=" + s.Postgres.SSLMode} {
			if !slices.Contains(env, want) {
				t.Errorf("%s: env %v lacks %s", s.Name, env, want)
			}
		}
		if slices.Contains(env, "DATABASE_USER="+s.Postgres.User) {
			t.Errorf("%s: the app connects as the administrative role %s", s.Name, s.Postgres.User)
		}
		var nets []string
		for _, n := range svc.TaskTemplate.Networks {
			nets = append(nets, n.Target)
		}
		if !slices.Contains(nets, "data") {
			t.Errorf("%s: networks %v, want the data network (the database's)", s.Name, nets)
		}
		// In the site's plan, the app rolls after the database, like the Django API.
		site, err := stacks.Build(context.Background(), in, stacks.ConvertOptions{References: true})
		if err != nil {
			t.Fatal(err)
		}
		order, entry := map[string]int{}, a.Name+"_"+a.Service
		for i, sv := range site.Services {
			order[sv.Name] = i
			if sv.Name == entry && !slices.Contains(sv.RollsAfter, "postgres_db") {
				t.Errorf("%s: %s rolls after %v, want postgres_db", s.Name, entry, sv.RollsAfter)
			}
		}
		if i, ok := order[entry]; !ok || i < order["postgres_db"] {
			t.Errorf("%s: %s at %d, postgres_db at %d: want the app after the database", s.Name, entry, i, order["postgres_db"])
		}
		if len(d.Secrets) != 1 {
			t.Fatalf("%s: secrets %+v, want one", s.Name, d.Secrets)
		}
		sec := d.Secrets[0]
		if string(sec.Data) != pgPassword || sec.Logical != a.Name+"_sitectl-database-password" || sec.Source != "env:NOTES_DB_PW" {
			t.Errorf("%s: secret %s from %s, want the app role's password (secrets.notes-db-password: env:NOTES_DB_PW)", s.Name, sec.Logical, sec.Source)
		}
		refs := svc.TaskTemplate.ContainerSpec.Secrets
		if len(refs) != 1 || refs[0].SecretName != sec.Name || refs[0].File.Name != "database-password" {
			t.Errorf("%s: secret references %+v, want %s at database-password", s.Name, refs, sec.Name)
		}
		// Content-hashed: another password is another secret version.
		t.Setenv("NOTES_DB_PW", pgPassword+"-rotated")
		d2, err := stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{Key: []byte("test-cluster")})
		t.Setenv("NOTES_DB_PW", pgPassword)
		if err != nil {
			t.Fatal(err)
		}
		if d2.Secrets[0].Name == sec.Name || d2.Secrets[0].Logical != sec.Logical {
			t.Errorf("%s: a new password keeps the secret's name %s", s.Name, sec.Name)
		}
		specs, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		files, err := stacks.Tree(context.Background(), in, map[string]string{})
		if err != nil {
			t.Fatal(err)
		}
		for what, b := range map[string][]byte{"compose file": r.Compose, "converted specs": specs} {
			if strings.Contains(string(b), pgPassword) {
				t.Errorf("%s: the password is in the %s", s.Name, what)
			}
		}
		for _, f := range files {
			if strings.Contains(string(f.Data), pgPassword) {
				t.Errorf("%s: the password is in the rendered tree's %s", s.Name, f.Path)
			}
		}
	}
}

// TestDatabaseOwnRole: an app naming its own role connects as it, with the password
// from the site secret it names.
func TestDatabaseOwnRole(t *testing.T) {
	dir := writeApps(t, map[string]string{"ledger/compose.yaml": "services:\n  api:\n    image: x/ledger:1\nx-sitectl:\n  sites: [douala]\n  database:\n    engine: postgres\n    user: ledger\n    password: {secret: ledger-db-password}\n"})
	topo := stacktest.Load(t, "dev", "douala:secrets.ledger-db-password.env=LEDGER_PW")
	topo = stacktest.WithApps(t, topo, dir)
	t.Setenv("LEDGER_PW", "ledger-pw-value")
	s := topo.Site("douala")
	in := stacks.Input{Topo: topo, Site: s}
	r, err := stacks.RenderApp(in, topo.Apps[0])
	if err != nil {
		t.Fatal(err)
	}
	d, err := stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if env := d.Services[0].Spec.TaskTemplate.ContainerSpec.Env; !slices.Contains(env, "DATABASE_USER=ledger") {
		t.Errorf("env %v, want DATABASE_USER=ledger", env)
	}
	if sec := d.Secrets[0]; string(sec.Data) != "ledger-pw-value" || sec.Source != "env:LEDGER_PW" {
		t.Errorf("secret from %s, want the site's secrets.ledger-db-password (env:LEDGER_PW)", sec.Source)
	}
	if strings.Contains(string(r.Compose), "ledger-pw-value") {
		t.Error("the password is in the compose file")
	}
}

// TestDatabaseSharedRole: an app naming user: postgres.app_user connects as the
// site's application role (the Django API's), with postgres.app_password as its
// secret; a second app may share it; no app secret is needed.
func TestDatabaseSharedRole(t *testing.T) {
	body := "services:\n  api:\n    image: x/%s:1\nx-sitectl:\n  sites: [douala]\n  database: {engine: postgres, user: postgres.app_user}\n"
	dir := writeApps(t, map[string]string{"ledger/compose.yaml": strings.Replace(body, "%s", "ledger", 1), "orders/compose.yaml": strings.Replace(body, "%s", "orders", 1)})
	t.Setenv("SITECTL_PG_APP_PASSWORD", "app-role-pw")
	topo := stacktest.WithApps(t, stacktest.Load(t, "dev"), dir)
	s := topo.Site("douala")
	for _, a := range topo.Apps {
		if !a.Database.SharesAppRole() {
			t.Fatalf("%s: database %+v, want the site's application role", a.Name, a.Database)
		}
		in := stacks.Input{Topo: topo, Site: s}
		r, err := stacks.RenderApp(in, a)
		if err != nil {
			t.Fatal(err)
		}
		d, err := stacks.Convert(context.Background(), in, r, stacks.ConvertOptions{})
		if err != nil {
			t.Fatal(err)
		}
		env := d.Services[0].Spec.TaskTemplate.ContainerSpec.Env
		for _, want := range []string{"DATABASE_USER=" + s.Postgres.AppUser, "DATABASE_URL=postgres://" + s.Postgres.AppUser + "@postgres_db:5432/" + s.Postgres.Database + "?sslmode=" + s.Postgres.SSLMode} {
			if s.Postgres.AppUser == "" || !slices.Contains(env, want) {
				t.Errorf("%s: env %v lacks %s", a.Name, env, want)
			}
		}
		if sec := d.Secrets[0]; string(sec.Data) != "app-role-pw" || sec.Source != "env:SITECTL_PG_APP_PASSWORD" {
			t.Errorf("%s: secret from %s, want postgres.app_password (env:SITECTL_PG_APP_PASSWORD)", a.Name, sec.Source)
		}
	}
}

// TestDatabaseRefusals: a bad database declaration is refused at load with ONE
// problem naming the app's file, the key, the site where it matters and the fix.
func TestDatabaseRefusals(t *testing.T) {
	notes, err := os.ReadFile(filepath.Join(dbFixtures, "notes", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, repl string) map[string]string {
		if !strings.Contains(string(notes), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return map[string]string{"notes/compose.yaml": strings.Replace(string(notes), old, repl, 1)}
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		set   []string
		key   string
		site  string
		file  string // the app's folder the problem names (default notes)
		msg   []string
	}{
		{name: "site without the postgres stack", files: edit("\n  database: postgres", "\n  database: postgres"), set: []string{"douala:stacks=kong"},
			key: "x-sitectl.database", site: "douala", msg: []string{"site douala does not run the postgres stack", "add postgres to its stacks, or drop it from x-sitectl.sites"}},
		{name: "inline password", files: edit("\n  database: postgres", "\n  database:\n    engine: postgres\n    user: notes\n    password: s3cr3t-value"),
			key: "x-sitectl.database.password", msg: []string{"an inline secret (value not shown)", "password: {secret: NAME}"}},
		{name: "password secret the site lacks", files: edit("\n  database: postgres", "\n  database:\n    engine: postgres\n    user: notes\n    password: {secret: notes-db}"),
			key: "x-sitectl.database.password", msg: []string{`no secret "notes-db" at sites douala, yaounde`, "add secrets.notes-db"}},
		{name: "default password secret the sites lack", files: edit("\n  database: postgres", "\n  database: {engine: postgres, user: notes}"), set: []string{},
			key: "x-sitectl.database.password", msg: []string{`no secret "notes-db-password" at sites douala, yaounde`, "role notes", "add secrets.notes-db-password"}},
		{name: "administrative role", files: edit("\n  database: postgres", "\n  database: {engine: postgres, user: sitectl}"),
			key: "x-sitectl.database.user", site: "douala", msg: []string{"role sitectl is the site's postgres.user, sitectl's administrative role", "a role of its own"}},
		{name: "the Django API's role", files: edit("\n  database: postgres", "\n  database: {engine: postgres, user: app}"),
			key: "x-sitectl.database.user", site: "douala", msg: []string{"postgres.app_user, the Django API's role"}},
		{name: "the application role with a password", files: edit("\n  database: postgres", "\n  database: {engine: postgres, user: postgres.app_user, password: {secret: notes-db-password}}"),
			key: "x-sitectl.database.password", msg: []string{"connects with the site's postgres.app_password: drop password:"}},
		{name: "bad role name", files: edit("\n  database: postgres", "\n  database: {engine: postgres, user: Notes-Role}"),
			key: "x-sitectl.database.user", msg: []string{`role "Notes-Role": lower case letters`, "default app_notes"}},
		{name: "two apps one role", files: map[string]string{"notes/compose.yaml": string(notes),
			"zeta/compose.yaml": "services:\n  api:\n    image: x/zeta:1\nx-sitectl:\n  sites: [douala]\n  database: {engine: postgres, user: app_notes, password: {secret: notes-db-password}}\n"},
			key: "x-sitectl.database.user", site: "douala", file: "zeta", msg: []string{"role app_notes is already app notes's", "a role of its own"}},
		{name: "unknown engine", files: edit("\n  database: postgres", "\n  database: mysql"),
			key: "x-sitectl.database", msg: []string{`engine "mysql": allowed: postgres`}},
		{name: "unknown key", files: edit("\n  database: postgres", "\n  database: {engine: postgres, role: x}"),
			key: "x-sitectl.database.role", msg: []string{"allowed: engine, user, password"}},
		{name: "compose sets what sitectl sets", files: edit("- STANDIN_PORTS=8080", "- STANDIN_PORTS=8080\n      - DATABASE_HOST=db"),
			key: "services.api.environment.DATABASE_HOST", msg: []string{"sitectl sets DATABASE_HOST", "drop it"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.set == nil {
				tc.set = notesSecret
			}
			if tc.file == "" {
				tc.file = "notes"
			}
			topo := stacktest.Load(t, "dev", tc.set...)
			dir := writeApps(t, tc.files)
			list, ps := apps.Load(apps.Options{Dir: dir, Topo: topo, Environ: []string{}})
			if list != nil {
				t.Errorf("apps returned despite problems: %v", list)
			}
			if len(ps) != 1 {
				t.Fatalf("%d problems, want 1:\n%v", len(ps), ps)
			}
			p := ps[0]
			if !strings.HasSuffix(p.File, filepath.Join(tc.file, "compose.yaml")) || p.Key != tc.key || p.Site != tc.site {
				t.Errorf("problem %s (site %q)\nwant file %s/compose.yaml, key %q, site %q", p, p.Site, tc.file, tc.key, tc.site)
			}
			for _, m := range tc.msg {
				if !strings.Contains(p.Message, m) {
					t.Errorf("problem %s\nwant message ~%q", p, m)
				}
			}
			if strings.Contains(p.String(), "s3cr3t-value") {
				t.Errorf("problem shows the secret value: %s", p)
			}
		})
	}
}

// writeApps writes files (path relative to the apps dir → content) into a new apps dir.
func writeApps(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
