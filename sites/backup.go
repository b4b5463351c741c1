package sites

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Backup says how the site's PostgreSQL database is backed up: by the Barman server
// of another site (DESIGN.md decision 11: the hub backs up the spokes, a spoke backs
// up the hub), streaming WAL through a physical replication slot and taking base
// backups on a schedule. Empty Server: the site is not backed up.
type Backup struct {
	// Server is the site whose Barman server backs up this site's database. It must
	// be another site: every backup is off-site.
	Server string `mapstructure:"server" json:"server,omitempty" yaml:"server,omitempty"`
	// Schedule is the longest time between two base backups; `backup status` fails
	// when the newest is older.
	Schedule Duration `mapstructure:"schedule" json:"schedule,omitzero" yaml:"schedule,omitempty"`
	// RetentionDays is Barman's recovery window: backups and WAL needed to restore to
	// any time in the last RetentionDays days are kept.
	RetentionDays int `mapstructure:"retention_days" json:"retention_days,omitempty" yaml:"retention_days,omitempty"`
	// MinimumRedundancy is the number of base backups Barman never deletes below.
	MinimumRedundancy int `mapstructure:"minimum_redundancy" json:"minimum_redundancy,omitempty" yaml:"minimum_redundancy,omitempty"`
	// Volume is the Docker volume on the backup server's site that holds this site's
	// backups and WAL.
	Volume string `mapstructure:"volume" json:"volume,omitempty" yaml:"volume,omitempty"`
	// MaxSlotWALKeepSize bounds the WAL the site keeps for the backup server's slot,
	// so a dead backup server cannot fill the site's disk. PostgreSQL bounds every
	// slot with its one server setting, postgres.max_slot_wal_keep_size: this is that
	// setting (filled from it when empty; a different size is refused). Never -1.
	MaxSlotWALKeepSize string `mapstructure:"max_slot_wal_keep_size" json:"max_slot_wal_keep_size,omitempty" yaml:"max_slot_wal_keep_size,omitempty"`
	// User is the replication role Barman connects as; Password its password.
	User     string    `mapstructure:"user" json:"user,omitempty" yaml:"user,omitempty"`
	Password SecretRef `mapstructure:"password" json:"password,omitzero" yaml:"password,omitempty"`
}

// Enabled reports whether the site is backed up.
func (b Backup) Enabled() bool { return b.Server != "" }

// SlotName is the physical replication slot the backup server streams from.
func (b Backup) SlotName(site string) string {
	return "barman_" + strings.ReplaceAll(site, "-", "_")
}

var volumeRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Backup defaults, for a site that names its backup server and leaves the rest.
const (
	DefaultBackupSchedule    = Duration(24 * 3600e9)
	DefaultBackupRetention   = 7
	DefaultBackupUser        = "barman"
	DefaultBackupPasswordEnv = "SITECTL_BACKUP_PASSWORD"
)

// withDefaults fills the settings left empty of a backed-up site.
func (b Backup) withDefaults(site string) Backup {
	if b.Schedule == 0 {
		b.Schedule = DefaultBackupSchedule
	}
	if b.RetentionDays == 0 {
		b.RetentionDays = DefaultBackupRetention
	}
	if b.MinimumRedundancy == 0 {
		b.MinimumRedundancy = 1
	}
	if b.Volume == "" {
		b.Volume = "barman-" + site
	}
	if b.User == "" {
		b.User = DefaultBackupUser
	}
	if b.Password.IsZero() {
		b.Password = SecretRef{Env: DefaultBackupPasswordEnv}
	}
	return b
}

// validateBackup fills the defaults of site s's backup section, then checks it;
// sites are the known site names.
func validateBackup(errf func(key, format string, args ...any), s *Site, sites map[string]bool) {
	if !s.Backup.Enabled() {
		if s.Backup != (Backup{}) {
			errf("backup.server", "is empty but other backup settings are set; name the site whose Barman server backs up %s (another site, e.g. the hub)", s.Name)
		}
		return
	}
	keepSet := s.Backup.MaxSlotWALKeepSize != ""
	s.Backup = s.Backup.withDefaults(s.Name)
	if !keepSet {
		s.Backup.MaxSlotWALKeepSize = s.Postgres.MaxSlotWALKeepSize
	}
	b := s.Backup
	names := slices.Sorted(maps.Keys(sites))
	switch {
	case b.Server == s.Name:
		errf("backup.server", "is %q, the site itself; backups must be off-site: name another site (%s)", b.Server, strings.Join(without(names, s.Name), ", "))
	case !sites[b.Server]:
		errf("backup.server", "is %q, which is not a site (sites: %s)", b.Server, strings.Join(names, ", "))
	}
	if b.Schedule < Duration(3600e9) {
		errf("backup.schedule", "is %s; allowed: 1h or more, the longest time between two base backups (e.g. 24h)", b.Schedule.D())
	}
	if b.RetentionDays < 1 {
		errf("backup.retention_days", "is %d; allowed: 1 or more days of recovery window (e.g. 7)", b.RetentionDays)
	}
	if b.MinimumRedundancy < 1 {
		errf("backup.minimum_redundancy", "is %d; allowed: 1 or more base backups kept whatever the retention", b.MinimumRedundancy)
	}
	if !volumeRE.MatchString(b.Volume) {
		errf("backup.volume", "is %q; a Docker volume name: letters, digits, _ . - (e.g. barman-%s)", b.Volume, s.Name)
	}
	// PostgreSQL bounds every slot with one server setting: the backup's slot is
	// bounded only if the server's is, and by the server's size.
	switch {
	case s.Postgres.MaxSlotWALKeepSize == "-1":
		errf("postgres.max_slot_wal_keep_size", "is -1 (unbounded) on a backed-up site: a dead backup server would fill %s's disk through its slot; give a size like 4GB", s.Name)
	case !keepSet:
	case b.MaxSlotWALKeepSize == "-1":
		errf("backup.max_slot_wal_keep_size", "is -1 (unbounded): a dead backup server would fill %s's disk; give a size like 4GB", s.Name)
	case !walSizeRE.MatchString(b.MaxSlotWALKeepSize):
		errf("backup.max_slot_wal_keep_size", "is %q; allowed: a size like 4GB (units kB, MB, GB, TB)", b.MaxSlotWALKeepSize)
	case WALBytes(b.MaxSlotWALKeepSize) != WALBytes(s.Postgres.MaxSlotWALKeepSize):
		errf("backup.max_slot_wal_keep_size", "is %s but postgres.max_slot_wal_keep_size is %s: PostgreSQL bounds every slot, the backup's too, with that one server setting; drop backup.max_slot_wal_keep_size or set postgres.max_slot_wal_keep_size to %s", b.MaxSlotWALKeepSize, s.Postgres.MaxSlotWALKeepSize, b.MaxSlotWALKeepSize)
	}
	if !identRE.MatchString(b.User) || strings.Contains(b.User, ".") {
		errf("backup.user", "is %q; a PostgreSQL role name: lower-case letters, digits, _ (e.g. barman)", b.User)
	}
	checkRef(errf, "backup.password", b.Password, false)
}

func without(list []string, drop string) []string {
	out := make([]string, 0, len(list))
	for _, v := range list {
		if v != drop {
			out = append(out, v)
		}
	}
	return out
}

// WALBytes is a max_slot_wal_keep_size matching walSizeRE in bytes (a bare number
// is MB; -1, unbounded, is -1).
func WALBytes(v string) int64 {
	if v == "-1" {
		return -1
	}
	mult := int64(1 << 20)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n * mult
}
