package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// Options tune planning and applying.
type Options struct {
	// Wait bounds how long a subscription step waits for its publisher's
	// publication (default 2m): when sites deploy in parallel, the publisher's
	// publication step may still be running.
	Wait time.Duration
	// PeerWait is how long Plan keeps retrying sites it cannot reach before it gives
	// up (default 0: report at once, right for `sitectl plan`). A deploy that starts
	// every site's database in parallel sets it, so one site's replication plan does
	// not fail only because another site's database is still starting.
	PeerWait time.Duration
	// Starting names the sites whose databases this deploy brings up. PeerWait only
	// applies while every unreachable site is one of them: a site outside the deploy
	// that does not answer will not start answering by waiting, so Plan reports it
	// at once. Nil means every site.
	Starting []string
}

// mayStart reports whether every site in errs is one whose database this deploy
// starts (so waiting for it makes sense).
func (o Options) mayStart(errs map[string]error) bool {
	if o.Starting == nil {
		return true
	}
	for s := range errs {
		if !slices.Contains(o.Starting, s) {
			return false
		}
	}
	return true
}

// Planned is the replication plan of every site.
type Planned struct {
	Changes map[string][]Change `json:"-"`
	// Errors holds, per site, why it cannot be planned. When any site has one, no
	// site gets changes: replication objects span sites, and a half-made flow is
	// worse than none.
	Errors map[string]error `json:"-"`
	sess   *Session
	opts   Options
}

// Steps returns the site's plan steps, in apply order, with their Apply functions.
func (p *Planned) Steps(site string) []plan.Step {
	var out []plan.Step
	for _, c := range p.Changes[site] {
		out = append(out, c.Step)
	}
	return out
}

// Count is the number of changes over every site.
func (p *Planned) Count() int {
	n := 0
	for _, cs := range p.Changes {
		n += len(cs)
	}
	return n
}

// Err joins the sites' planning errors, sorted by site.
func (p *Planned) Err() error {
	var errs []error
	for _, s := range slices.Sorted(maps.Keys(p.Errors)) {
		errs = append(errs, p.Errors[s])
	}
	return errors.Join(errs...)
}

// Plan reads every replicating site (all of them, before anything is decided) and
// computes the steps that bring each to the topology's desired state. A site that
// cannot be reached or whose tables cannot replicate stops the whole plan: every
// site's entry in Errors says which site and why.
func Plan(ctx context.Context, topo *sites.Topology, sess *Session, opts Options) (*Planned, error) {
	if opts.Wait == 0 {
		opts.Wait = 2 * time.Minute
	}
	p := &Planned{Changes: map[string][]Change{}, Errors: map[string]error{}, sess: sess, opts: opts}
	d, err := Build(topo)
	if err != nil {
		return nil, err
	}
	if len(d.SiteNames()) == 0 {
		return p, nil
	}
	if d, err = buildLive(ctx, topo, sess); err != nil {
		return nil, err
	}
	lives, errs := readAll(ctx, sess, d)
	for deadline := time.Now().Add(opts.PeerWait); len(errs) > 0 && opts.mayStart(errs) && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(retryAfter):
		}
		lives, errs = readAll(ctx, sess, d)
	}
	// An old instance of a rebuilt site, a half-rebuilt site or a lost one replaced
	// by an empty database is never planned as it is: a deploy would reconnect the
	// old one, or re-copy the empty one's rows over its peers' copies.
	for n, e := range checkFences(ctx, sess, slices.Sorted(maps.Keys(lives))) {
		errs[n] = e
	}
	for n, e := range checkLost(ctx, sess, d, lives) {
		errs[n] = e
	}
	ex := Extras{Copies: map[string]map[string]int64{}, Conflicts: map[string]*Conflict{}, Schema: map[string]string{}, Roles: map[string]RoleChange{}}
	for _, name := range slices.Sorted(maps.Keys(lives)) {
		if err := checkSite(ctx, topo, sess, d, lives[name], ex); err != nil {
			errs[name] = err
		}
	}
	if len(errs) == 0 {
		if err := readExtras(ctx, sess, d, lives, ex); err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		var bad, absent []string
		for _, s := range slices.Sorted(maps.Keys(errs)) {
			bad = append(bad, fmt.Sprintf("%s (%v)", s, errs[s]))
			if opts.Starting != nil && !slices.Contains(opts.Starting, s) {
				absent = append(absent, s)
			}
		}
		fix := "fix that site, then re-run the deploy"
		if len(absent) > 0 {
			fix = fmt.Sprintf("not part of this deploy: %s; deploy it too (--site %s, or --all), then replication is set up", strings.Join(absent, ", "), strings.Join(absent, " --site "))
		}
		for _, s := range d.SiteNames() {
			if e := errs[s]; e != nil {
				p.Errors[s] = e
			} else {
				p.Errors[s] = peerError{fmt.Errorf("replication not planned: cannot plan %s; nothing is changed on any site until every replicating site's database answers: %s", strings.Join(bad, "; "), fix)}
			}
		}
		return p, nil
	}
	p.Changes = Diff(d, lives, ex)
	for site, cs := range p.Changes {
		for i := range cs {
			op := cs[i].Op
			if op.Kind == OpBlocked {
				continue
			}
			cs[i].Step.Apply = func(ctx context.Context) error { return p.apply(ctx, topo, op) }
		}
		p.Changes[site] = cs
	}
	return p, nil
}

// checkSite checks the server settings and the replicated tables, and decides
// whether the schema file must be applied.
func checkSite(ctx context.Context, topo *sites.Topology, sess *Session, d *Desired, live *Live, ex Extras) error {
	site := topo.Site(live.Site)
	if live.Version < 150000 {
		return fmt.Errorf("%s: PostgreSQL %d is too old: row filters and disable_on_error need 15 or later", live.Site, live.Version/10000)
	}
	if wl := live.Settings["wal_level"]; wl != "logical" {
		return fmt.Errorf("%s: wal_level is %s; replication needs logical: redeploy the postgres stack (it passes postgres.ServerSettings) and restart the server", live.Site, wl)
	}
	if err := checkRole(ctx, sess, site, ex); err != nil {
		return err
	}
	schema, err := LoadSchema(topo, site)
	if err != nil {
		return err
	}
	var missing []string
	for _, t := range d.Tables {
		if live.Tables[t] == nil {
			missing = append(missing, t)
		}
	}
	why := ""
	switch {
	case schema == nil && len(missing) > 0:
		return fmt.Errorf("%s: tables %s do not exist and no postgres.schema_file creates them", live.Site, strings.Join(missing, ", "))
	case schema == nil:
	case len(missing) > 0:
		why = fmt.Sprintf("apply %s (sha256 %.12s): creates %s", site.Postgres.SchemaFile, schema.SHA256, strings.Join(missing, ", "))
	case live.SchemaSHA != schema.SHA256:
		why = fmt.Sprintf("apply %s (sha256 %.12s → %.12s)", site.Postgres.SchemaFile, orNone(live.SchemaSHA), schema.SHA256)
	}
	if why != "" {
		pool, err := sess.Pool(ctx, live.Site)
		if err != nil {
			return err
		}
		if err := schema.DryRun(ctx, pool, d.Tables); errors.As(err, new(lockWaitError)) {
			return fmt.Errorf("%s: %w", live.Site, err)
		} else if err != nil {
			return fmt.Errorf("%s: %w (tried in a transaction that was rolled back; fix %s)", live.Site, err, site.Postgres.SchemaFile)
		}
		ex.Schema[live.Site] = why
		return nil
	}
	var errs []error
	for _, t := range d.Tables {
		if err := live.Tables[t].Check(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", live.Site, errors.Join(errs...))
	}
	return nil
}

// checkRole reads the site's application role (postgres.app_user) and records
// what makes it right in ex.Roles.
func checkRole(ctx context.Context, sess *Session, site *sites.Site, ex Extras) error {
	p := site.Postgres
	if p.AppUser == "" {
		return nil
	}
	pw, err := p.AppPassword.Resolve()
	if err != nil {
		return fmt.Errorf("%s: postgres.app_password (the password of the application role %s): %w", site.Name, p.AppUser, err)
	}
	pool, err := sess.Pool(ctx, site.Name)
	if err != nil {
		return err
	}
	st, err := ReadRole(ctx, pool, p.AppUser, p.User)
	if err != nil {
		return fmt.Errorf("%s: %w", site.Name, err)
	}
	action, diff := st.Diff(p.AppUser, pw, p.AppPassword)
	ex.Roles[site.Name] = RoleChange{User: p.AppUser, Action: action, Diff: diff}
	return nil
}

// readExtras reads what the diff needs beyond the catalogs.
func readExtras(ctx context.Context, sess *Session, d *Desired, lives map[string]*Live, ex Extras) error {
	for _, site := range slices.Sorted(maps.Keys(d.Subscriptions)) {
		for i := range d.Subscriptions[site] {
			s := &d.Subscriptions[site][i]
			live := lives[site].Subscriptions[s.Name]
			subPool, err := sess.Pool(ctx, site)
			if err != nil {
				return err
			}
			// Earlier copies of rows the subscription is about to copy: every table of a
			// new subscription, the added tables of an existing one.
			slot := lives[s.Flow.From].Slots[s.Name]
			recreate := live != nil && (slot == nil || slot.WALStatus == "lost")
			counts := map[string]int64{}
			for _, t := range s.Tables {
				if lives[site].Tables[t] == nil {
					continue
				}
				if _, has := live.tableState(t); has && !recreate {
					continue
				}
				var n int64
				if err := subPool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", quoteTable(t), s.Flow.Filter)).Scan(&n); err != nil {
					return fmt.Errorf("%s: count earlier copies in %s: %w", site, t, err)
				}
				counts[t] = n
			}
			ex.Copies[s.Name] = counts
			if live == nil || live.Enabled {
				continue
			}
			pubPool, err := sess.Pool(ctx, s.Flow.From)
			if err != nil {
				return err
			}
			if lives[s.Flow.From].Slots[s.Name] == nil {
				continue
			}
			pend, err := FindConflict(ctx, pubPool, subPool, s, live.OID)
			if err != nil {
				// Not knowing is not fatal: enabling a subscription whose conflict is
				// still there only disables it again, and status tells why.
				continue
			}
			if pend != nil && pend.Conflict != nil {
				ex.Conflicts[s.Name] = pend.Conflict
			}
		}
	}
	return nil
}
