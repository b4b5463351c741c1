package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// An app using the site's database (x-sitectl.database) connects as a role of its
// own, which sitectl makes and keeps at each site running the app: a step of the
// app's group, before its services (so a new password is set before the tasks that
// read it start). With --prune, the group "app roles" drops the roles of apps the
// site no longer runs (marked as an app's by their comment), unless a role owns
// objects (tables the app's migrations made), which the plan says.

// ComponentPostgres is the component of the app role steps.
const ComponentPostgres = postgres.ComponentPostgres

// appRolesGroup names the group dropping the roles of apps no longer run.
const appRolesGroup = "app roles"

// dbStartWait is how long the role step waits for a database that does not answer.
var dbStartWait = time.Minute

// connectDB opens a pool to a site's PostgreSQL as sitectl's administrative role.
var connectDB = postgres.Connect

// appRoleStep is the step making app's role right at the site (nil when it is), or
// a create step noting that the database does not answer yet: a deploy plans it
// again once the stacks part has started the database.
func appRoleStep(ctx context.Context, site *sites.Site, a *sites.App) (*plan.Step, error) {
	db := a.Database
	if db == nil || db.Engine != "postgres" || db.SharesAppRole() {
		return nil, nil // the site's application role is kept with the postgres stack
	}
	if _, runs := a.Sites[site.Name]; !runs {
		return nil, nil
	}
	ref := site.Secrets[db.PasswordSecret]
	st := &plan.Step{Site: site.Name, Component: ComponentPostgres, Name: "app role " + db.User,
		Apply: func(ctx context.Context) error {
			pw, err := ref.Resolve()
			if err != nil {
				return err
			}
			// A database the stacks part has just started may not answer yet.
			for deadline := time.Now().Add(dbStartWait); ; {
				err = withDB(ctx, site, func(pool *pgxpool.Pool) error {
					return postgres.ApplyAppRole(ctx, pool, a.Name, db.User, site.Postgres.User, pw)
				})
				if err == nil || !notAnswering(err) || time.Now().After(deadline) {
					return err
				}
				select {
				case <-ctx.Done():
					return err
				case <-time.After(2 * time.Second):
				}
			}
		}}
	pw, err := ref.Resolve()
	if err != nil {
		return nil, fmt.Errorf("app %s: role %s: %w", a.Name, db.User, err)
	}
	var state *postgres.AppRoleState
	err = withDB(ctx, site, func(pool *pgxpool.Pool) (err error) {
		state, err = postgres.ReadAppRole(ctx, pool, db.User, site.Postgres.User)
		return err
	})
	switch {
	case err != nil && notAnswering(err):
		st.Action = plan.Create
		st.Diff = []string{"LOGIN, no superuser; password from " + ref.String() + " (secrets." + db.PasswordSecret + ")",
			"grant " + postgres.AppPrivileges + " on the tables of schema public"}
		st.Note = "the site's PostgreSQL does not answer yet: checked again when deploying"
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("app %s: role %s: %w", a.Name, db.User, err)
	}
	st.Action, st.Diff = state.Diff(a.Name, db.User, pw, ref)
	if len(st.Diff) == 0 {
		return nil, nil
	}
	return st, nil
}

// orphanRoleSteps are, with --prune, the steps dropping the roles marked as apps'
// that no app the site runs has (the app's folder removed, or its sites no longer
// naming this one); a role owning objects is kept, with a note.
func orphanRoleSteps(ctx context.Context, s *session) ([]plan.Step, error) {
	site := s.site
	if !s.opts.Prune || len(s.opts.Stacks) > 0 || !site.HasStack("postgres") || site.Postgres.User == "" {
		return nil, nil
	}
	keep := map[string]bool{}
	for _, a := range s.topo.AppsAt(site.Name) {
		if a.Database != nil {
			keep[a.Database.User] = true
		}
	}
	var roles []postgres.AppRole
	err := withDB(ctx, site, func(pool *pgxpool.Pool) (err error) {
		roles, err = postgres.AppRoles(ctx, pool)
		return err
	})
	if err != nil {
		if notAnswering(err) {
			return nil, nil // no database yet: no role to drop
		}
		return nil, fmt.Errorf("app roles: %w", err)
	}
	var out []plan.Step
	for _, r := range roles {
		if keep[r.User] {
			continue
		}
		st := plan.Step{Site: site.Name, Component: ComponentPostgres, Action: plan.Remove, Name: "app role " + r.User, Group: appRolesGroup}
		if r.Owns > 0 {
			st.Action = plan.Noop
			st.Note = fmt.Sprintf("app %s is no longer deployed here, but its role owns %d objects (tables its migrations made): not dropped; drop or REASSIGN OWNED BY %s them, then deploy --prune again", r.App, r.Owns, r.User)
		} else {
			user := r.User
			st.Note = "app " + r.App + " is no longer deployed here"
			st.Apply = func(ctx context.Context) error {
				return withDB(ctx, site, func(pool *pgxpool.Pool) error { return postgres.DropAppRole(ctx, pool, user) })
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// withDB runs fn with a pool to the site's database, closed after.
func withDB(ctx context.Context, site *sites.Site, fn func(*pgxpool.Pool) error) error {
	pool, err := connectDB(ctx, site)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(pool)
}

// notAnswering reports whether err is a database that does not answer (yet).
func notAnswering(err error) bool { return postgres.Unreachable(err) }
