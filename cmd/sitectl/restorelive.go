package main

import (
	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/sites"
)

// liveOrNil is site s's live database for a restore's WAL nudge
// (backup.RestoreOptions.Live), or nil when its password cannot be resolved: the
// restore then waits for the site's own next WAL, and the password's error is
// reported where the restore needs it.
func liveOrNil(s *sites.Site) *pgx.ConnConfig {
	cfg, err := liveConfig(s)
	if err != nil {
		return nil
	}
	return cfg
}
