package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sitectl/sitectl/sites"
)

// Querier runs statements on a site's database (a pool, a connection, a tx).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SlotState is the backup server's physical slot as pg_replication_slots shows it.
type SlotState struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// WALStatus is reserved, extended, unreserved or lost; lost: the slot passed
	// max_slot_wal_keep_size and PostgreSQL removed WAL Barman had not received.
	WALStatus string `json:"wal_status"`
	Active    bool   `json:"active"`
	// SafeWALSize is how much more WAL may be written before the slot is lost (nil
	// when unbounded or lost).
	SafeWALSize *int64 `json:"safe_wal_size,omitempty"`
}

// Lost reports whether the slot passed max_slot_wal_keep_size.
func (s *SlotState) Lost() bool { return s != nil && s.WALStatus == "lost" }

// DBState is what a site's database says of its backup side.
type DBState struct {
	RoleExists bool
	// Missing are the attributes and grants the role lacks ("LOGIN", "REPLICATION",
	// "EXECUTE pg_backup_start(text, boolean)", "pg_read_all_settings", ...).
	Missing []string
	// Verifier is pg_authid.rolpassword of the role ("" when none).
	Verifier string
	// HBAFile is the server's pg_hba.conf and HBA its content.
	HBAFile, HBA string
	// Slot is the backup server's slot; nil when missing.
	Slot *SlotState
	// KeepSize is the server's max_slot_wal_keep_size in bytes (-1 unbounded).
	KeepSize int64
}

// backupFunctions are the functions RoleSQL grants, as has_function_privilege names them.
var backupFunctions = []string{"pg_backup_start(text, boolean)", "pg_backup_stop(boolean)", "pg_switch_wal()", "pg_create_restore_point(text)"}

// backupRoles are the predefined roles RoleSQL grants.
var backupRoles = []string{"pg_read_all_settings", "pg_read_all_stats"}

// ReadSlot reads the slot named slot; nil when there is none.
func ReadSlot(ctx context.Context, q Querier, slot string) (*SlotState, error) {
	s := &SlotState{Name: slot}
	err := q.QueryRow(ctx, `SELECT slot_type, coalesce(wal_status, ''), active, safe_wal_size FROM pg_replication_slots WHERE slot_name = $1`, slot).
		Scan(&s.Type, &s.WALStatus, &s.Active, &s.SafeWALSize)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read slot %s: %w", slot, err)
	}
	return s, nil
}

// ReadDB reads the backup side of a site's database as sitectl's role (a
// superuser: pg_authid and the server's pg_hba.conf are readable only to one).
func ReadDB(ctx context.Context, q Querier, user, slot string) (*DBState, error) {
	st := &DBState{}
	var login, repl bool
	err := q.QueryRow(ctx, `SELECT rolcanlogin, rolreplication, coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1`, user).Scan(&login, &repl, &st.Verifier)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("read role %s: %w", user, err)
	default:
		st.RoleExists = true
		if !login {
			st.Missing = append(st.Missing, "LOGIN")
		}
		if !repl {
			st.Missing = append(st.Missing, "REPLICATION")
		}
		for _, f := range backupFunctions {
			var ok bool
			if err := q.QueryRow(ctx, `SELECT has_function_privilege($1, $2, 'EXECUTE')`, user, f).Scan(&ok); err != nil {
				return nil, fmt.Errorf("read role %s: %w", user, err)
			}
			if !ok {
				st.Missing = append(st.Missing, "EXECUTE "+f)
			}
		}
		for _, r := range backupRoles {
			var ok bool
			if err := q.QueryRow(ctx, `SELECT pg_has_role($1, $2, 'MEMBER')`, user, r).Scan(&ok); err != nil {
				return nil, fmt.Errorf("read role %s: %w", user, err)
			}
			if !ok {
				st.Missing = append(st.Missing, r)
			}
		}
	}
	if err := q.QueryRow(ctx, `SELECT setting, pg_read_file(setting) FROM pg_settings WHERE name = 'hba_file'`).Scan(&st.HBAFile, &st.HBA); err != nil {
		return nil, fmt.Errorf("read pg_hba.conf: %w", err)
	}
	if st.Slot, err = ReadSlot(ctx, q, slot); err != nil {
		return nil, err
	}
	var keep string
	if err := q.QueryRow(ctx, `SELECT CASE WHEN setting = '-1' THEN '-1' ELSE setting || coalesce(unit, '') END FROM pg_settings WHERE name = 'max_slot_wal_keep_size'`).Scan(&keep); err != nil {
		return nil, fmt.Errorf("read max_slot_wal_keep_size: %w", err)
	}
	st.KeepSize = sites.WALBytes(keep)
	return st, nil
}

// HBA block markers: sitectl owns the lines between them, at the top of pg_hba.conf.
const (
	hbaBegin = "# sitectl backup: begin (the backup server's role; rendered by sitectl, do not edit)"
	hbaEnd   = "# sitectl backup: end"
)

// WithHBA is content with sitectl's backup block replaced by lines (first in the
// file: the first matching line decides, and these match only the backup role from
// the backup server's LAN); no lines removes the block.
func WithHBA(content string, lines []string) string {
	var rest []string
	in := false
	for _, l := range strings.Split(content, "\n") {
		switch {
		case l == hbaBegin:
			in = true
		case l == hbaEnd && in:
			in = false
		case !in:
			rest = append(rest, l)
		}
	}
	if len(lines) == 0 {
		return strings.Join(rest, "\n")
	}
	block := append(append([]string{hbaBegin}, lines...), hbaEnd)
	return strings.Join(slices.Concat(block, rest), "\n")
}

// HBABlock is the lines of sitectl's block in content (nil when none).
func HBABlock(content string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(content, "\n") {
		switch {
		case l == hbaBegin:
			in = true
		case l == hbaEnd:
			in = false
		case in:
			out = append(out, l)
		}
	}
	return out
}
