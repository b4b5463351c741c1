package postgres

import (
	"strconv"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// PassFileSecret is the postgres stack's secret holding the site's passfile, and
// PassFileTarget where the database container finds it.
const (
	PassFileSecret = "postgres-pgpass"
	PassFileTarget = "/run/secrets/" + PassFileSecret
)

// PassFilePath is the passfile site's server reads its subscriptions' passwords
// from: postgres.passfile, else the postgres stack's secret when the site runs the
// stack; "" (the password in the connection string) for postgres.passfile: none
// or a database sitectl does not run.
func PassFilePath(site *sites.Site) string {
	switch p := site.Postgres.PassFile; {
	case p == "none":
		return ""
	case p != "":
		return p
	case site.HasStack("postgres"):
		return PassFileTarget
	}
	return ""
}

// PassLine is one line of a libpq passfile (sites.PassLine).
type PassLine = sites.PassLine

// PassLines are the passfile lines of site's server: one per publisher it
// subscribes to, matching the subscription's connection exactly (host, port,
// database, user). Nil when the site subscribes to nothing.
func PassLines(topo *sites.Topology, site *sites.Site) ([]PassLine, error) {
	d, err := Build(topo)
	if err != nil {
		return nil, err
	}
	var out []PassLine
	seen := map[string]bool{}
	for _, s := range d.Subscriptions[site.Name] {
		c := s.Conn
		prefix := strings.Join([]string{PassEscape(c.Host), strconv.Itoa(c.Port), PassEscape(c.Database), PassEscape(c.User)}, ":") + ":"
		if seen[prefix] {
			continue
		}
		seen[prefix] = true
		out = append(out, PassLine{Prefix: prefix, Password: c.Password})
	}
	return out, nil
}

// PassFile is the passfile's content with the passwords read from their
// references. Never print it.
func PassFile(lines []PassLine) ([]byte, error) { return sites.PassFile(lines) }

// PassEscape escapes a passfile field: backslash and colon get a backslash.
func PassEscape(s string) string { return sites.PassEscape(s) }
