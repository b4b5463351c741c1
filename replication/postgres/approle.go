package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // only to read an existing md5 verifier, never to make one
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// The application's own role (postgres.app_user): the API connects as it, never as
// sitectl's administrative role (postgres.user), which keeps replication, the
// schema and every other administrative path. It logs in, is no superuser, creates
// no role or database, does not replicate nor bypass row security, and may only
// read and write the rows of the tables in schema public (SELECT, INSERT, UPDATE,
// DELETE; no TRUNCATE, no DDL: sitectl applies the schema). Tables sitectl's role
// creates later get the same grants (default privileges).

// AppPrivileges are the table privileges the application role holds.
const AppPrivileges = "SELECT, INSERT, UPDATE, DELETE"

// roleAttrs are the role attributes the application role must not have, as
// pg_roles names them, with the clause that takes each away.
var roleAttrs = []struct{ col, off string }{
	{"rolsuper", "NOSUPERUSER"}, {"rolcreaterole", "NOCREATEROLE"}, {"rolcreatedb", "NOCREATEDB"},
	{"rolreplication", "NOREPLICATION"}, {"rolbypassrls", "NOBYPASSRLS"},
}

// RoleState is what a site's catalogs say of the application role.
type RoleState struct {
	Exists bool
	// Wrong are the attributes it has but must not (SUPERUSER, ...), or NOLOGIN.
	Wrong []string
	// Verifier is pg_authid.rolpassword ("" when none).
	Verifier string
	// Missing are the tables of schema public it lacks a privilege on.
	Missing []string
	// NoDefaults: sitectl's role has no default privileges granting it new tables.
	NoDefaults bool
}

// ReadRole reads the application role user as sitectl's administrative role admin
// (a superuser: pg_authid is readable only to one).
func ReadRole(ctx context.Context, q Querier, user, admin string) (*RoleState, error) {
	st := &RoleState{}
	cols := make([]string, 0, len(roleAttrs))
	for _, a := range roleAttrs {
		cols = append(cols, a.col)
	}
	flags := make([]bool, len(roleAttrs)+1)
	dest := make([]any, 0, len(flags)+1)
	for i := range flags {
		dest = append(dest, &flags[i])
	}
	dest = append(dest, &st.Verifier)
	err := q.QueryRow(ctx, `SELECT `+strings.Join(cols, ", ")+`, rolcanlogin, coalesce(rolpassword, '')
		FROM pg_authid WHERE rolname = $1`, user).Scan(dest...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("read role %s: %w", user, err)
	}
	st.Exists = true
	for i, a := range roleAttrs {
		if flags[i] {
			st.Wrong = append(st.Wrong, strings.TrimPrefix(a.off, "NO"))
		}
	}
	if !flags[len(roleAttrs)] {
		st.Wrong = append(st.Wrong, "NOLOGIN")
	}
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT IN ('sitectl_schema', 'sitectl_generation')
		AND NOT (has_table_privilege($1, c.oid, 'SELECT') AND has_table_privilege($1, c.oid, 'INSERT')
		     AND has_table_privilege($1, c.oid, 'UPDATE') AND has_table_privilege($1, c.oid, 'DELETE'))
		ORDER BY 1`, user)
	if err != nil {
		return nil, fmt.Errorf("read the privileges of role %s: %w", user, err)
	}
	var t string
	if _, err := pgx.ForEachRow(rows, []any{&t}, func() error { st.Missing = append(st.Missing, "public."+t); return nil }); err != nil {
		return nil, fmt.Errorf("read the privileges of role %s: %w", user, err)
	}
	var n int
	if err := q.QueryRow(ctx, `SELECT count(DISTINCT a.privilege_type) FROM pg_default_acl d
		JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
		WHERE n.nspname = 'public' AND d.defaclobjtype = 'r'
		AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = $2)
		AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1)
		AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')`, user, admin).Scan(&n); err != nil {
		return nil, fmt.Errorf("read the default privileges for role %s: %w", user, err)
	}
	st.NoDefaults = n < 4
	return st, nil
}

// Diff is the plan step's action and diff lines that make the role right for
// password, or no lines when it is right. It never prints the password.
func (st *RoleState) Diff(user string, password []byte, ref sites.SecretRef) (plan.Action, []string) {
	if !st.Exists {
		return plan.Create, []string{"LOGIN, no superuser; password from " + ref.String(),
			"grant " + AppPrivileges + " on the tables of schema public (and on tables sitectl creates later)"}
	}
	var out []string
	for _, w := range st.Wrong {
		out = append(out, "attribute "+w+" → "+map[bool]string{true: "LOGIN", false: "NO" + w}[w == "NOLOGIN"])
	}
	if !PasswordMatches(st.Verifier, user, password) {
		out = append(out, "password: set from "+ref.String())
	}
	if len(st.Missing) > 0 {
		out = append(out, "grant "+AppPrivileges+" on "+strings.Join(st.Missing, ", "))
	}
	if st.NoDefaults {
		out = append(out, "default privileges: "+AppPrivileges+" on tables sitectl creates later")
	}
	return plan.Update, out
}

// ApplyRole creates or alters the application role and grants it its tables. The
// password goes over as a SCRAM verifier made here (the server never sees it in
// clear), with statement logging off for the transaction.
func ApplyRole(ctx context.Context, pool *pgxpool.Pool, user, admin string, password []byte) error {
	verifier, err := ScramVerifier(password)
	if err != nil {
		return err
	}
	u := quoteIdent(user)
	attrs := "LOGIN"
	for _, a := range roleAttrs {
		attrs += " " + a.off
	}
	stmts := []string{
		"GRANT USAGE ON SCHEMA public TO " + u,
		fmt.Sprintf("GRANT %s ON ALL TABLES IN SCHEMA public TO %s", AppPrivileges, u),
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + u,
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA public GRANT %s ON TABLES TO %s", quoteIdent(admin), AppPrivileges, u),
		fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO %s", quoteIdent(admin), u),
	}
	// sitectl's own bookkeeping (schema version, fencing generations) is not the
	// application's.
	for _, t := range []string{"public.sitectl_schema", GenerationTable} {
		stmts = append(stmts, "DO $$ BEGIN IF to_regclass('"+t+"') IS NOT NULL THEN EXECUTE 'REVOKE ALL ON "+t+" FROM "+strings.ReplaceAll(u, "'", "''")+"'; END IF; END $$")
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var db string
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT current_database(), EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", user).Scan(&db, &exists); err != nil {
			return err
		}
		verb := "ALTER"
		if !exists {
			verb = "CREATE"
		}
		head := []string{
			"SET LOCAL log_statement = 'none'", "SET LOCAL log_min_error_statement = 'panic'", "SET LOCAL log_min_duration_statement = -1",
			fmt.Sprintf("%s ROLE %s %s PASSWORD %s", verb, u, attrs, quoteLiteral(verifier)),
			fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", quoteIdent(db), u),
		}
		for _, s := range append(head, stmts...) {
			if _, err := tx.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
				// The statement may hold the verifier: the error names the role only.
				return fmt.Errorf("%s role %s: %s", strings.ToLower(verb), user, pgErrText(err))
			}
		}
		return nil
	})
}

// pgErrText is a server error's message without the statement.
func pgErrText(err error) string {
	return Redact(strings.SplitN(err.Error(), " (SQLSTATE", 2)[0])
}

// scramIterations is PostgreSQL's default (scram_iterations in 16+).
const scramIterations = 4096

// ScramVerifier makes a SCRAM-SHA-256 verifier of password as PostgreSQL stores it:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
func ScramVerifier(password []byte) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	stored, server, err := scramKeys(password, salt, scramIterations)
	if err != nil {
		return "", err
	}
	b := base64.StdEncoding
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b.EncodeToString(salt), b.EncodeToString(stored), b.EncodeToString(server)), nil
}

func scramKeys(password, salt []byte, iter int) (stored, server []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, string(password), salt, iter, sha256.Size)
	if err != nil {
		return nil, nil, err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	client := sha256.Sum256(mac(salted, "Client Key"))
	return client[:], mac(salted, "Server Key"), nil
}

// PasswordMatches reports whether verifier (pg_authid.rolpassword) is password's:
// a SCRAM-SHA-256 verifier, or an md5 one. A password PostgreSQL would normalise
// (SASLprep: non-ASCII) is compared as its bytes.
func PasswordMatches(verifier, user string, password []byte) bool {
	if rest, ok := strings.CutPrefix(verifier, "md5"); ok && len(rest) == 32 {
		sum := md5.Sum(append(append([]byte{}, password...), user...)) //nolint:gosec // reading an md5 verifier
		return subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(rest)) == 1
	}
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return false
	}
	iterS, saltB64, ok1 := strings.Cut(params, ":")
	storedB64, _, ok2 := strings.Cut(keys, ":")
	iter, err := strconv.Atoi(iterS)
	if !ok1 || !ok2 || err != nil || iter <= 0 {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(saltB64)
	want, err2 := base64.StdEncoding.DecodeString(storedB64)
	if err1 != nil || err2 != nil {
		return false
	}
	stored, _, err := scramKeys(password, salt, iter)
	return err == nil && subtle.ConstantTimeCompare(stored, want) == 1
}
