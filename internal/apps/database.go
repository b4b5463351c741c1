package apps

import (
	"maps"
	"slices"

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

// checkDatabase reads x-sitectl.database ("postgres", or {engine, user, password:
// {secret: NAME}}) and checks it against every site that runs the app: the site
// runs the postgres stack and has the password's secret; the compose file does not
// set what sitectl sets. Nil when none is declared or on a problem (reported).
func checkDatabase(c *collector, rel string, topo *sites.Topology, raw any, runs []string, svc *composetypes.ServiceConfig, dict map[string]any) *sites.AppDatabase {
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
	db := &sites.AppDatabase{Engine: d.Engine, User: d.User, PasswordSecret: sites.AppDatabasePassword}
	switch p := d.Password.(type) {
	case nil:
		if d.User != "" {
			c.errf(rel, "", dbKey+".password", "user %s has no password: name the site secret holding it (password: {secret: NAME}, with secrets.NAME in the site config)", d.User)
			return nil
		}
	case map[string]any:
		name, _ := p["secret"].(string)
		if len(p) != 1 || name == "" {
			c.errf(rel, "", dbKey+".password", "must be {secret: NAME}, naming the site's secrets.NAME")
			return nil
		}
		if d.User == "" {
			c.errf(rel, "", dbKey+".user", "a password without a user: name the role (user: ROLE) or drop the password to use the site's postgres.user")
			return nil
		}
		db.PasswordSecret = name
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
		}
	}
	if len(noStack) > 0 {
		c.errf(rel, oneSite(noStack), dbKey, "the app uses the site's PostgreSQL, but %s does not run the postgres stack (with a postgres section: database, user): add postgres to its stacks, or drop it from %s.sites", sitesPhrase(noStack), Extension)
		return false
	}
	if len(noSecret) > 0 {
		c.errf(rel, oneSite(noSecret), dbKey+".password", "no secret %q at %s: add secrets.%s ({env: VAR} or {file: path}) to the site config (defaults.yaml for every site)", db.PasswordSecret, sitesPhrase(noSecret), db.PasswordSecret)
		return false
	}
	return true
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
