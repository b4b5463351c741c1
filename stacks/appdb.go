package stacks

import (
	"net/url"
	"path"
	"strconv"

	"github.com/sitectl/sitectl/sites"
)

// appDatabaseNetwork is the site network the postgres stack's database is on.
const appDatabaseNetwork = "data"

// appDatabaseService is the postgres stack's database service, as the site's
// services reach it by name on the data network.
const appDatabaseService = "postgres_db"

// appDatabasePort is the port PostgreSQL listens on in its container (the postgres
// stack publishes it on the node at values.postgres.port; on the data network it is
// always this one).
const appDatabasePort = 5432

// addAppDatabase wires the app's database (a.Database) into the entry service svc
// of the app's compose document doc for in.Site: DATABASE_HOST, _PORT, _NAME, _USER
// and DATABASE_PASSWORD_FILE, the password as a secret (sites.AppDatabaseSecret,
// mounted at /run/secrets/sites.AppDatabaseTarget) from the site secret the app
// names (never a value), the data network, and a roll after the database. It
// returns the secret reference behind the secret's `file: secrets/<name>`.
func addAppDatabase(in Input, a *sites.App, doc, svc map[string]any) map[string]sites.SecretRef {
	db := a.Database
	s := in.Site
	user := db.UserAt(s)
	port := strconv.Itoa(appDatabasePort)
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: appDatabaseService + ":" + port, Path: "/" + s.Postgres.Database}
	if s.Postgres.SSLMode != "" {
		u.RawQuery = "sslmode=" + s.Postgres.SSLMode
	}
	vars := map[string]string{
		// Without a password, which is only in the file.
		"DATABASE_URL":           u.String(),
		"DATABASE_HOST":          appDatabaseService,
		"DATABASE_PORT":          port,
		"DATABASE_NAME":          s.Postgres.Database,
		"DATABASE_USER":          user,
		"DATABASE_PASSWORD_FILE": path.Join("/run/secrets", sites.AppDatabaseTarget),
	}
	switch env := svc["environment"].(type) {
	case []any:
		for _, k := range sites.AppDatabaseEnv {
			env = append(env, k+"="+vars[k])
		}
		svc["environment"] = env
	default:
		m, _ := env.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		for k, v := range vars {
			m[k] = v
		}
		svc["environment"] = m
	}
	list, _ := svc["secrets"].([]any)
	svc["secrets"] = append(list, map[string]any{"source": sites.AppDatabaseSecret, "target": sites.AppDatabaseTarget})
	top, _ := doc["secrets"].(map[string]any)
	if top == nil {
		top = map[string]any{}
	}
	top[sites.AppDatabaseSecret] = map[string]any{"file": SecretsDir + sites.AppDatabaseSecret}
	doc["secrets"] = top
	joinNetwork(doc, svc, appDatabaseNetwork)
	after, _ := svc[RollsAfterKey].([]any)
	if !containsAny(after, appDatabaseService) {
		svc[RollsAfterKey] = append(after, appDatabaseService)
	}
	return map[string]sites.SecretRef{sites.AppDatabaseSecret: db.PasswordAt(s)}
}

// joinNetwork puts svc on the site network name (external to the app's stack).
func joinNetwork(doc, svc map[string]any, name string) {
	switch nets := svc["networks"].(type) {
	case nil:
		svc["networks"] = []any{"default", name}
	case []any:
		if !containsAny(nets, name) {
			svc["networks"] = append(nets, name)
		}
	case map[string]any:
		if _, ok := nets[name]; !ok {
			nets[name] = nil
		}
	}
	topNets, _ := doc["networks"].(map[string]any)
	if topNets == nil {
		topNets = map[string]any{}
	}
	if _, ok := topNets[name]; !ok {
		topNets[name] = map[string]any{"external": true}
	}
	doc["networks"] = topNets
}
