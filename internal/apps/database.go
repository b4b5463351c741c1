package apps

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	composetypes "github.com/docker/cli/cli/compose/types"

	"github.com/sitectl/sitectl/sites"
)

// dbKey is the x-sitectl key declaring the app's database.
const dbKey = Extension + ".database"

// dbDecl is x-sitectl.database in its long form.
type dbDecl struct {
	Engine   string `yaml:"engine"`
	User     string `yaml:"user"`
	Password any    `yaml:"password"`
}

// roleRE is a role name sitectl makes: lower case, digits and underscores, starting
// with a letter or underscore, at most 63 bytes (PostgreSQL's NAMEDATALEN - 1).
var roleRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// checkDatabase reads x-sitectl.database ("postgres", or {engine, user, password:
// {secret: NAME}}) of app name and checks it against every site that runs the app:
// the site runs the postgres stack and has the password's secret; the role is the
// app's own (not sitectl's administrative role nor the Django API's); the compose
// file does not set what sitectl sets. Nil when none is declared or on a problem
// (reported).
func checkDatabase(c *collector, rel, name string, topo *sites.Topology, raw any, runs []string, svc *composetypes.ServiceConfig, dict map[string]any) *sites.AppDatabase {
	var d dbDecl
	switch x := raw.(type) {
	case nil:
		return nil
	case string:
		d.Engine = x
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if k != "engine" && k != "user" && k != "password" {
				c.errf(rel, "", dbKey+"."+k, "unknown key (allowed: engine, user, password)")
				return nil
			}
		}
		d.Engine, _ = x["engine"].(string)
		d.User, _ = x["user"].(string)
		d.Password = x["password"]
	default:
		c.errf(rel, "", dbKey, "must be postgres or {engine: postgres, user: ROLE, password: {secret: NAME}}, not %T", raw)
		return nil
	}
	if d.Engine != "postgres" {
		c.errf(rel, "", dbKey, "engine %q: allowed: postgres (the site's postgres stack)", d.Engine)
		return nil
	}
	db := &sites.AppDatabase{Engine: d.Engine, User: d.User, PasswordSecret: sites.AppPasswordSecretName(name)}
	if db.User == "" {
		db.User = sites.AppRoleName(name)
	}
	if db.User == sites.AppUserRef {
		return sharedRole(c, rel, topo, runs, d, svc, dict, db)
	}
	if !roleRE.MatchString(db.User) || strings.HasPrefix(db.User, "pg_") {
		c.errf(rel, "", dbKey+".user", "role %q: lower case letters, digits and underscores, starting with a letter, at most 63, not pg_* (default %s)", db.User, sites.AppRoleName(name))
		return nil
	}
	switch p := d.Password.(type) {
	case nil:
	case map[string]any:
		secret, _ := p["secret"].(string)
		if len(p) != 1 || secret == "" {
			c.errf(rel, "", dbKey+".password", "must be {secret: NAME}, naming the site's secrets.NAME")
			return nil
		}
		db.PasswordSecret = secret
	default:
		c.errf(rel, "", dbKey+".password", "an inline secret (value not shown): name the site secret holding it instead (password: {secret: NAME}, with secrets.NAME: {env: VAR} or {file: path} in the site config)")
		return nil
	}
	if !dbSitesOK(c, rel, topo, runs, db) {
		return nil
	}
	if !dbComposeOK(c, rel, svc, dict) {
		return nil
	}
	return db
}

// dbSitesOK checks that every site running the app runs the postgres stack and has
// the password's secret.
func dbSitesOK(c *collector, rel string, topo *sites.Topology, runs []string, db *sites.AppDatabase) bool {
	var noStack, noSecret []string
	for _, sn := range runs {
		s := topo.Site(sn)
		switch {
		case !s.HasStack("postgres") || s.Postgres.Database == "" || s.Postgres.User == "":
			noStack = append(noStack, sn)
		case s.Secrets[db.PasswordSecret].IsZero():
			noSecret = append(noSecret, sn)
		case db.User == s.Postgres.User:
			c.errf(rel, sn, dbKey+".user", "role %s is the site's postgres.user, sitectl's administrative role: an app gets a role of its own (drop user: for the default)", db.User)
			return false
		case db.User == s.Postgres.AppUser:
			c.errf(rel, sn, dbKey+".user", "role %s is the site's postgres.app_user, the Django API's role: an app gets a role of its own (drop user: for the default), or names the site's application role as user: %s", db.User, sites.AppUserRef)
			return false
		}
	}
	if len(noStack) > 0 {
		c.errf(rel, oneSite(noStack), dbKey, "the app uses the site's PostgreSQL, but %s does not run the postgres stack (with a postgres section: database, user): add postgres to its stacks, or drop it from %s.sites", sitesPhrase(noStack), Extension)
		return false
	}
	if len(noSecret) > 0 {
		c.errf(rel, oneSite(noSecret), dbKey+".password", "no secret %q at %s: the password of the app's role %s: add secrets.%s ({env: VAR} or {file: path}; generate it, e.g. openssl rand -hex 24) to the site config (defaults.yaml for every site)", db.PasswordSecret, sitesPhrase(noSecret), db.User, db.PasswordSecret)
		return false
	}
	return true
}

// sharedRole checks an app connecting as the site's application role
// (user: postgres.app_user): its password is postgres.app_password, so the app names
// none, and every site running the app has both.
func sharedRole(c *collector, rel string, topo *sites.Topology, runs []string, d dbDecl, svc *composetypes.ServiceConfig, dict map[string]any, db *sites.AppDatabase) *sites.AppDatabase {
	if d.Password != nil {
		c.errf(rel, "", dbKey+".password", "user: %s connects with the site's postgres.app_password: drop password:", sites.AppUserRef)
		return nil
	}
	db.PasswordSecret = ""
	var missing []string
	for _, sn := range runs {
		s := topo.Site(sn)
		switch {
		case !s.HasStack("postgres") || s.Postgres.Database == "" || s.Postgres.User == "":
			c.errf(rel, sn, dbKey, "the app uses the site's PostgreSQL, but %s does not run the postgres stack (with a postgres section: database, user): add postgres to its stacks, or drop it from %s.sites", sn, Extension)
			return nil
		case s.Postgres.AppUser == "" || s.Postgres.AppPassword.IsZero():
			missing = append(missing, sn)
		}
	}
	if len(missing) > 0 {
		c.errf(rel, oneSite(missing), dbKey+".user", "%s: %s has no application role: set postgres.app_user and postgres.app_password ({env: VAR} or {file: path}) in the site config, or give the app a role of its own (drop user:)", sites.AppUserRef, sitesPhrase(missing))
		return nil
	}
	if !dbComposeOK(c, rel, svc, dict) {
		return nil
	}
	return db
}

// dbComposeOK refuses a compose file setting what sitectl sets for the database.
func dbComposeOK(c *collector, rel string, svc *composetypes.ServiceConfig, dict map[string]any) bool {
	if svc == nil {
		return false
	}
	for _, k := range sites.AppDatabaseEnv {
		if _, ok := svc.Environment[k]; ok {
			c.errf(rel, "", "services."+svc.Name+".environment."+k, "sitectl sets %s from %s at each site: drop it from the compose file", k, dbKey)
			return false
		}
	}
	if secrets, _ := dict["secrets"].(map[string]any); secrets != nil {
		if _, ok := secrets[sites.AppDatabaseSecret]; ok {
			c.errf(rel, "", "secrets."+sites.AppDatabaseSecret, "sitectl adds this secret for %s: rename yours", dbKey)
			return false
		}
	}
	return true
}

// oneSite is the site a problem is about when it is one ("" for several: the
// message names them).
func oneSite(list []string) string {
	if len(list) == 1 {
		return list[0]
	}
	return ""
}

// checkRoles refuses two apps with one database role at one site: each app's
// role is its own (its grants and password are kept per app).
func checkRoles(c *collector, list []*sites.App) {
	seen := map[string]*sites.App{} // site/role → first app
	for _, a := range list {
		if a.Database == nil || a.Database.SharesAppRole() {
			continue // the site's application role is shared by design
		}
		for _, sn := range slices.Sorted(maps.Keys(a.Sites)) {
			k := sn + "/" + a.Database.User
			if o := seen[k]; o != nil && o != a {
				c.errf(a.File, sn, dbKey+".user", "role %s is already app %s's (%s): each app gets a role of its own; drop user: (default %s) or name another", a.Database.User, o.Name, o.File, sites.AppRoleName(a.Name))
				break
			}
			seen[k] = a
		}
	}
}
