// Package backup backs up every site's PostgreSQL database with Barman on another
// site (DESIGN.md decision 11): it renders the Barman configuration and the
// database side (replication role, pg_hba line, slot bound), reads Barman's state
// for `sitectl backup status`, and restores a site's database as of a time into a
// scratch server, never into the live one.
package backup

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// PGBinDir is where the Barman image (and Debian) keeps PostgreSQL 15's programs:
// pg_basebackup, pg_receivewal, and pg_ctl for restores.
const PGBinDir = "/usr/lib/postgresql/15/bin"

// Target is one site's database as its backup server sees it.
type Target struct {
	// Site is the backed-up site; it is also Barman's server name.
	Site     string
	Host     string
	Port     int
	Database string
	SSLMode  string
	// User is the replication role Barman connects as (its password comes from a
	// password file, never from the configuration).
	User string
	Slot string
	// Backup is the site's backup section, defaults filled.
	Backup sites.Backup
}

// Targets are the sites whose databases server backs up, sorted by name.
func Targets(topo *sites.Topology, server string) []Target {
	var out []Target
	for _, s := range topo.Sites {
		if s.Backup.Server != server {
			continue
		}
		out = append(out, TargetOf(s))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Site < out[j].Site })
	return out
}

// TargetOf is site s's database as its backup server reaches it: through the
// tunnels, at the address other sites replicate from.
func TargetOf(s *sites.Site) Target {
	host := s.Postgres.ReplicationHost
	if host == "" {
		host = s.Postgres.Host
	}
	return Target{Site: s.Name, Host: host, Port: s.Postgres.Port, Database: s.Postgres.Database,
		SSLMode: s.Postgres.SSLMode, User: s.Backup.User, Slot: s.Backup.SlotName(s.Name), Backup: s.Backup}
}

// Servers are the sites that run a Barman server, sorted.
func Servers(topo *sites.Topology) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range topo.Sites {
		if s.Backup.Enabled() && !seen[s.Backup.Server] {
			seen[s.Backup.Server] = true
			out = append(out, s.Backup.Server)
		}
	}
	sort.Strings(out)
	return out
}

// Global is the [barman] section: where Barman keeps its state and logs.
type Global struct {
	// Home holds one folder per backed-up site (base backups, WAL); the volume.
	Home string
	// ConfigDir holds one <site>.conf per backed-up site.
	ConfigDir string
	LogFile   string
	// User is the system user Barman runs as.
	User string
}

// DefaultGlobal is the layout of the Barman image.
var DefaultGlobal = Global{Home: "/var/lib/barman", ConfigDir: "/etc/barman.d", LogFile: "/var/log/barman/barman.log", User: "barman"}

// GlobalConf renders barman.conf.
func GlobalConf(g Global) []byte {
	var b bytes.Buffer
	b.WriteString("; Rendered by sitectl: Barman's global settings (DESIGN.md decision 11).\n")
	b.WriteString("[barman]\n")
	fmt.Fprintf(&b, "barman_user = %s\n", g.User)
	fmt.Fprintf(&b, "barman_home = %s\n", g.Home)
	fmt.Fprintf(&b, "configuration_files_directory = %s\n", g.ConfigDir)
	fmt.Fprintf(&b, "log_file = %s\n", g.LogFile)
	b.WriteString("log_level = INFO\n")
	// Streaming only: nothing runs in the database container, no archive_command.
	b.WriteString("archiver = off\n")
	b.WriteString("streaming_archiver = on\n")
	b.WriteString("backup_method = postgres\n")
	return b.Bytes()
}

// ServerConf renders the Barman server section of one backed-up site.
func ServerConf(t Target) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "; Rendered by sitectl: the backup of site %s's PostgreSQL database.\n", t.Site)
	fmt.Fprintf(&b, "[%s]\n", t.Site)
	fmt.Fprintf(&b, "description = \"site %s (sitectl)\"\n", t.Site)
	fmt.Fprintf(&b, "conninfo = %s\n", conninfo(t, true))
	fmt.Fprintf(&b, "streaming_conninfo = %s\n", conninfo(t, false))
	b.WriteString("backup_method = postgres\n")
	b.WriteString("archiver = off\n")
	b.WriteString("streaming_archiver = on\n")
	// The slot holds the WAL Barman has not received yet, up to the site's
	// max_slot_wal_keep_size (backup.max_slot_wal_keep_size): a dead backup server
	// cannot fill the site's disk; status reports a slot that lost WAL.
	fmt.Fprintf(&b, "slot_name = %s\n", t.Slot)
	b.WriteString("create_slot = auto\n")
	// A backup starts at once instead of waiting for a spread checkpoint (minutes).
	b.WriteString("immediate_checkpoint = true\n")
	fmt.Fprintf(&b, "path_prefix = %s\n", PGBinDir)
	fmt.Fprintf(&b, "retention_policy = RECOVERY WINDOW OF %d DAYS\n", t.Backup.RetentionDays)
	b.WriteString("wal_retention_policy = main\n")
	fmt.Fprintf(&b, "minimum_redundancy = %d\n", t.Backup.MinimumRedundancy)
	// Barman counts the age in whole days; sitectl checks the schedule itself.
	fmt.Fprintf(&b, "last_backup_maximum_age = %d DAYS\n", int(math.Ceil(t.Backup.Schedule.D().Hours()/24)))
	return b.Bytes()
}

// conninfo is a libpq connection string without a password (libpq reads it from
// the password file the image writes from the Docker secret).
func conninfo(t Target, withDB bool) string {
	parts := []string{"host=" + t.Host, fmt.Sprintf("port=%d", t.Port), "user=" + t.User}
	// Barman itself asks for a replication connection on streaming_conninfo.
	if withDB {
		parts = append(parts, "dbname="+t.Database)
	}
	if t.SSLMode != "" {
		parts = append(parts, "sslmode="+t.SSLMode)
	}
	parts = append(parts, "application_name="+t.Slot)
	return strings.Join(parts, " ")
}
