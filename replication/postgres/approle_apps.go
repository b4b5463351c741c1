package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// An operator app's own role (x-sitectl.database): made and kept like the
// application role (ApplyRole: LOGIN, no superuser, the rows of the tables of
// schema public, nothing of sitectl's bookkeeping), and marked as the app's with a
// comment on the role, so a later deploy with --prune finds the roles of apps no
// longer declared and drops them.

// appRoleMark is the comment on an app's role: appRoleMark + the app's name.
const appRoleMark = "sitectl app "

// AppRoleState is what a site's catalogs say of an app's role: RoleState, and the
// app it is marked for ("" when unmarked: a role made outside sitectl).
type AppRoleState struct {
	*RoleState
	App string
}

// ReadAppRole reads an app's role user as sitectl's administrative role admin.
func ReadAppRole(ctx context.Context, q Querier, user, admin string) (*AppRoleState, error) {
	st, err := ReadRole(ctx, q, user, admin)
	if err != nil || !st.Exists {
		return &AppRoleState{RoleState: st}, err
	}
	var mark string
	if err := q.QueryRow(ctx, `SELECT coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles WHERE rolname = $1`, user).Scan(&mark); err != nil {
		return nil, fmt.Errorf("read role %s: %w", user, err)
	}
	app, _ := strings.CutPrefix(mark, appRoleMark)
	if app == mark {
		app = ""
	}
	return &AppRoleState{RoleState: st, App: app}, nil
}

// Diff is the plan step's action and diff lines that make the role app's, right
// for password; no lines when it is right. It never prints the password.
func (st *AppRoleState) Diff(app, user string, password []byte, ref sites.SecretRef) (plan.Action, []string) {
	a, out := st.RoleState.Diff(user, password, ref)
	switch {
	case !st.Exists:
		return a, append(out, "marked as app "+app+"'s (comment on the role)")
	case st.App == "":
		out = append(out, "adopt the role (made outside sitectl): mark it as app "+app+"'s")
	case st.App != app:
		out = append(out, "role of app "+st.App+" → app "+app)
	}
	return a, out
}

// ApplyAppRole creates or alters app's role user (ApplyRole) and marks it as the
// app's.
func ApplyAppRole(ctx context.Context, pool *pgxpool.Pool, app, user, admin string, password []byte) error {
	if err := ApplyRole(ctx, pool, user, admin, password); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "COMMENT ON ROLE "+quoteIdent(user)+" IS "+quoteLiteral(appRoleMark+app)); err != nil {
		return fmt.Errorf("mark role %s as app %s's: %s", user, app, pgErrText(err))
	}
	return nil
}

// AppRole is a role marked as an app's, as a site's catalogs hold it.
type AppRole struct {
	User, App string
	// Owns counts the objects the role owns in any database (tables an app's
	// migrations made): such a role is not dropped.
	Owns int
}

// AppRoles lists the roles marked as apps', in name order.
func AppRoles(ctx context.Context, q Querier) ([]AppRole, error) {
	rows, err := q.Query(ctx, `SELECT r.rolname, substr(d.description, length($1) + 1),
		(SELECT count(*) FROM pg_shdepend s WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid AND s.deptype = 'o')
		FROM pg_roles r JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
		WHERE d.description LIKE $1 || '%' ORDER BY 1`, appRoleMark)
	if err != nil {
		return nil, fmt.Errorf("list the apps' roles: %w", err)
	}
	var out []AppRole
	var r AppRole
	if _, err := pgx.ForEachRow(rows, []any{&r.User, &r.App, &r.Owns}, func() error { out = append(out, r); return nil }); err != nil {
		return nil, fmt.Errorf("list the apps' roles: %w", err)
	}
	return out, nil
}

// ErrRoleOwns is DropAppRole's refusal of a role that owns objects.
var ErrRoleOwns = errors.New("the role owns objects")

// DropAppRole drops an app's role user: its privileges and the default privileges
// naming it first (DROP OWNED BY, which also drops what it owns: so only when it
// owns nothing, checked in the same transaction), then the role.
func DropAppRole(ctx context.Context, pool *pgxpool.Pool, user string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var owns int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid
			WHERE s.refclassid = 'pg_authid'::regclass AND r.rolname = $1 AND s.deptype = 'o'`, user).Scan(&owns); err != nil {
			return fmt.Errorf("drop role %s: %s", user, pgErrText(err))
		}
		if owns > 0 {
			return fmt.Errorf("drop role %s: %w (%d): drop or reassign them first (REASSIGN OWNED BY %s TO ...)", user, ErrRoleOwns, owns, user)
		}
		u := quoteIdent(user)
		for _, s := range []string{"DROP OWNED BY " + u, "DROP ROLE " + u} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("drop role %s: %s", user, pgErrText(err))
			}
		}
		return nil
	})
}

// Unreachable reports whether err is Connect's for a database that does not answer
// (no connection, or a server still starting), not one that refused.
func Unreachable(err error) bool { return errors.As(err, new(unreachableError)) }
