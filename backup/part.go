package backup

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
	pgrepl "github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// ComponentBackup names the database side of the backups in plans.
const ComponentBackup plan.Component = "backup"

// Part is the database side of a backed-up site as one part of `sitectl plan` /
// `deploy`: the role its backup server connects as (LOGIN REPLICATION, the backup
// functions, not a superuser; its password set from backup.password as a SCRAM
// verifier), the pg_hba lines admitting that role from the backup server's LAN,
// and the physical slot Barman streams from, bounded by the server's
// max_slot_wal_keep_size. A site that is not backed up has no steps; a second
// deploy plans none.
type Part struct{}

var _ plan.Part = Part{}

// Name names the part in plans and errors.
func (Part) Name() string { return "backup database side" }

// Plan reads the site's database and returns the steps that give it its backup side.
func (Part) Plan(ctx context.Context, topo *sites.Topology, site *sites.Site) ([]plan.Step, error) {
	if !site.Backup.Enabled() {
		return nil, nil
	}
	server := topo.Site(site.Backup.Server)
	if server == nil {
		return nil, fmt.Errorf("site %s: backup.server %q is not a site", site.Name, site.Backup.Server)
	}
	pw, err := site.Backup.Password.Resolve()
	if err != nil {
		return nil, fmt.Errorf("site %s: backup.password: %w", site.Name, err)
	}
	pool, err := pgrepl.Connect(ctx, site)
	if err != nil {
		// The stacks part of this same deploy may be about to start the database.
		return nil, plan.NotYet(err)
	}
	st, err := ReadDB(ctx, pool, site.Backup.User, site.Backup.SlotName(site.Name))
	pool.Close()
	if err != nil {
		return nil, fmt.Errorf("site %s: backup database side: %w", site.Name, err)
	}
	return Steps(site, server, st, pw), nil
}

// Steps are the changes that bring st to site's backup configuration; password is
// backup.password's value (compared with the role's verifier, never shown).
func Steps(site, server *sites.Site, st *DBState, password []byte) []plan.Step {
	user, slot := site.Backup.User, site.Backup.SlotName(site.Name)
	var steps []plan.Step
	step := func(a plan.Action, name string, diff []string, note string, apply func(context.Context, *pgxpool.Pool) error) {
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentBackup, Action: a, Name: name, Diff: diff, Note: note,
			Apply: func(ctx context.Context) error {
				pool, err := pgrepl.Connect(ctx, site)
				if err != nil {
					return err
				}
				defer pool.Close()
				return apply(ctx, pool)
			}})
	}
	pwMatches := st.Verifier != "" && pgrepl.PasswordMatches(st.Verifier, user, password)
	role := "role " + user
	switch {
	case !st.RoleExists:
		step(plan.Create, role, []string{"LOGIN REPLICATION, EXECUTE on the backup functions, pg_read_all_settings, pg_read_all_stats (not a superuser)",
			"password: from backup.password (" + site.Backup.Password.String() + ")"}, "", applyRole(user, password))
	case len(st.Missing) > 0 || !pwMatches:
		var diff []string
		if len(st.Missing) > 0 {
			diff = append(diff, "grant: "+strings.Join(st.Missing, ", "))
		}
		if !pwMatches {
			diff = append(diff, "password: set from backup.password ("+site.Backup.Password.String()+")")
		}
		step(plan.Update, role, diff, "", applyRole(user, password))
	}
	want := HBALines(site, server)
	if have := HBABlock(st.HBA); !slices.Equal(have, want) {
		var diff []string
		for _, l := range have {
			if !slices.Contains(want, l) {
				diff = append(diff, "- "+l)
			}
		}
		for _, l := range want {
			if !slices.Contains(have, l) {
				diff = append(diff, "+ "+l)
			}
		}
		a := plan.Update
		if have == nil {
			a = plan.Create
		}
		step(a, "pg_hba "+user+" from "+server.Name, diff, "reloaded, not restarted; refused (and the old file kept) if PostgreSQL finds an error in it",
			func(ctx context.Context, p *pgxpool.Pool) error { return applyHBA(ctx, p, want) })
	}
	bound := fmt.Sprintf("bounded by max_slot_wal_keep_size %s", site.Backup.MaxSlotWALKeepSize)
	switch {
	case st.Slot == nil:
		step(plan.Create, "slot "+slot, []string{"physical, WAL reserved now", bound}, "", func(ctx context.Context, p *pgxpool.Pool) error {
			return createSlot(ctx, p, slot, false)
		})
	case st.Slot.Type != "physical":
		step(plan.Update, "slot "+slot, []string{"type: " + st.Slot.Type + " → physical"}, "dropped and re-created: Barman needs a new base backup (sitectl backup run --site "+site.Name+")",
			func(ctx context.Context, p *pgxpool.Pool) error { return createSlot(ctx, p, slot, true) })
	case st.Slot.Lost():
		step(plan.Update, "slot "+slot, []string{"wal_status: lost → reserved"},
			fmt.Sprintf("the slot passed max_slot_wal_keep_size %s (the backup server stopped receiving WAL) and PostgreSQL removed WAL it had not received: dropped and re-created; restores cannot cross the gap, take a new base backup (sitectl backup run --site %s)", site.Backup.MaxSlotWALKeepSize, site.Name),
			func(ctx context.Context, p *pgxpool.Pool) error { return createSlot(ctx, p, slot, true) })
	}
	return steps
}

// applyRole creates or repairs the role, then sets its password as a SCRAM verifier
// (the password itself is never sent in a statement).
func applyRole(user string, password []byte) func(context.Context, *pgxpool.Pool) error {
	return func(ctx context.Context, p *pgxpool.Pool) error {
		verifier, err := pgrepl.ScramVerifier(password)
		if err != nil {
			return err
		}
		return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
			for _, q := range RoleSQL(user) {
				if _, err := tx.Exec(ctx, q); err != nil {
					return fmt.Errorf("role %s: %s: %w", user, strings.SplitN(q, " TO ", 2)[0], err)
				}
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD %s", quoteIdent(user), quoteLiteral(verifier))); err != nil {
				return fmt.Errorf("role %s: set the password: %w", user, err)
			}
			return nil
		})
	}
}

// applyHBA writes pg_hba.conf with sitectl's block (server side, through a large
// object: the file keeps every byte of the rest), reloads, and puts the old file
// back if PostgreSQL reports an error in the new one.
func applyHBA(ctx context.Context, p *pgxpool.Pool, lines []string) error {
	var file, old string
	if err := p.QueryRow(ctx, `SELECT setting, pg_read_file(setting) FROM pg_settings WHERE name = 'hba_file'`).Scan(&file, &old); err != nil {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	write := func(content string) error {
		err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
			var oid uint32
			if err := tx.QueryRow(ctx, `SELECT lo_from_bytea(0, convert_to($1, 'UTF8'))`, content).Scan(&oid); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT lo_export($1, $2)`, oid, file); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `SELECT lo_unlink($1)`, oid)
			return err
		})
		if err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
		_, err = p.Exec(ctx, `SELECT pg_reload_conf()`)
		return err
	}
	if err := write(WithHBA(old, lines)); err != nil {
		return err
	}
	var bad []string
	rows, err := p.Query(ctx, `SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL`)
	if err == nil {
		bad, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(bad) > 0 {
		if rerr := write(old); rerr != nil {
			return fmt.Errorf("pg_hba.conf refused (%v %s) and the old file could not be put back: %w", err, strings.Join(bad, "; "), rerr)
		}
		return fmt.Errorf("pg_hba.conf with the backup lines refused (%v %s): the old file is back", err, strings.Join(bad, "; "))
	}
	return nil
}

// createSlot creates the physical slot with WAL reserved now (so WAL is kept from
// the deploy on, up to max_slot_wal_keep_size), dropping a slot of that name first
// when replace is set.
func createSlot(ctx context.Context, p *pgxpool.Pool, slot string, replace bool) error {
	if replace {
		if _, err := p.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
			return fmt.Errorf("drop slot %s: %w (is Barman still connected? stop its receive-wal first)", slot, err)
		}
	}
	if _, err := p.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, slot); err != nil {
		return fmt.Errorf("create slot %s: %w", slot, err)
	}
	return nil
}
