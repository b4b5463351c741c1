package backup

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// RoleSQL are the statements that give a site's database the role its backup
// server connects as: replication (pg_basebackup, pg_receivewal) and the few
// functions and views `barman backup` and `barman check` use — not a superuser.
// The password is set separately (PasswordSQL) and never printed.
func RoleSQL(user string) []string {
	id := quoteIdent(user)
	return []string{
		fmt.Sprintf(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE %s LOGIN REPLICATION; END IF; END $$`, quoteLiteral(user), id),
		fmt.Sprintf("ALTER ROLE %s LOGIN REPLICATION", id),
		fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean) TO %s", id),
		fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_backup_stop(boolean) TO %s", id),
		fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_switch_wal() TO %s", id),
		fmt.Sprintf("GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO %s", id),
		fmt.Sprintf("GRANT pg_read_all_settings TO %s", id),
		fmt.Sprintf("GRANT pg_read_all_stats TO %s", id),
	}
}

// PasswordSQL sets the role's password. The statement holds the secret: run it,
// never print or log it.
func PasswordSQL(user string, password []byte) string {
	return fmt.Sprintf("ALTER ROLE %s PASSWORD %s", quoteIdent(user), quoteLiteral(string(password)))
}

// HBALines are the pg_hba.conf lines site needs for its backup server: the
// replication connection and the ordinary one, from the backup server's site LAN
// (its traffic arrives through the tunnel), scram-sha-256 only.
func HBALines(site, server *sites.Site) []string {
	u := site.Backup.User
	return []string{
		fmt.Sprintf("host replication %s %s scram-sha-256", u, server.LAN),
		fmt.Sprintf("host %s %s %s scram-sha-256", site.Postgres.Database, u, server.LAN),
	}
}

// PgpassLine is the line of Barman's password file for t (host:port:*:user:pw,
// with : and \ escaped). It holds the secret: written to a 0600 file only.
func PgpassLine(t Target, password []byte) string {
	esc := func(s string) string { return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s) }
	return fmt.Sprintf("%s:%d:*:%s:%s\n", esc(t.Host), t.Port, esc(t.User), esc(string(password)))
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
