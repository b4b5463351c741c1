package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// RebuildOptions tune a rebuild.
type RebuildOptions struct {
	// Force rebuilds a site whose database still holds replicated rows or
	// replication objects: they are dropped there first (never on another site).
	Force bool
	// Wait bounds a wait that makes no progress: a subscription's initial copy that
	// copies nothing more, the verification's convergence (default 2m).
	Wait time.Duration
	// Progress receives live lines (key, text): rows copied and rate. Nil: silent.
	Progress func(key, text string)
	// Restored is a restored copy of the site's database (sitectl restore
	// --replace): its rows of the site that no peer holds are copied back too
	// (rebuild_restored.go).
	Restored *RestoredCopy
}

// Rebuild is the plan that rebuilds one site's database from its peers, and, once
// run, what it copied and verified.
type Rebuild struct {
	Site string `json:"site"`
	// From is the generation the peers recorded for the site; Generation the
	// rebuilt one.
	From       int64 `json:"from_generation"`
	Generation int64 `json:"generation"`
	// Resumed: a rebuild of this generation had started; this one finishes it.
	Resumed bool `json:"resumed"`
	// OwnSource is the peer the site's own rows are copied back from.
	OwnSource string      `json:"own_rows_from"`
	Steps     []plan.Step `json:"steps"`

	mu       sync.Mutex
	Copied   []Copied   `json:"copied,omitempty"`
	Verified []Verified `json:"verified,omitempty"`

	topo *sites.Topology
	sess *Session
	d    *Desired
	p    *Planned
	opts RebuildOptions
	// cleared: --force drops the site's publications first.
	cleared bool
	// subStart: what the site held of each subscription's rows when it was made.
	subStart map[string]subStart
	// peers: the peers' sums, read during the own rows' copy (startPeerSums).
	peers *peerSums
}

// Rows is the total of rows copied so far (subscriptions' initial copies included).
func (r *Rebuild) Rows() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, c := range r.Copied {
		n += c.Rows
	}
	return n
}

func (r *Rebuild) record(c Copied) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Copied = append(r.Copied, c)
}

func (r *Rebuild) status(key, format string, args ...any) {
	if r.opts.Progress != nil {
		r.opts.Progress(key, fmt.Sprintf(format, args...))
	}
}

// PlanRebuild reads every replicating site and plans the rebuild of site, whose
// database was lost and replaced by an empty one (same configuration):
//
//  1. a new generation, recorded at every site (fencing the old instance);
//  2. the peers' subscriptions to the old instance dropped (their slots died with it);
//  3. the schema; the site's subscriptions, with their initial copy, bringing the
//     rows of the other sites while its own rows are copied back from a peer that
//     holds them (the hub for a spoke; for the hub, the spoke holding most of them);
//  4. with the site's subscriptions paused where they bring rows it publishes (the
//     hub): its publications and slots, the rows a peer lacks (compared by count and
//     checksum per table and owner; not the site's own rows at the peer they were
//     copied from) copied to it, then the peers' subscriptions without initial
//     copy: nothing is copied twice;
//  5. the site's subscriptions resumed; every table's rows verified per owner, by
//     count and checksum, equal on every site; the generation active.
//
// It changes nothing. Every peer must answer. A re-run after an interruption
// resumes: each step checks what is done already.
func PlanRebuild(ctx context.Context, topo *sites.Topology, sess *Session, site string, opts RebuildOptions) (*Rebuild, error) {
	if opts.Wait == 0 {
		opts.Wait = 2 * time.Minute
	}
	d, err := Build(topo)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(d.SiteNames(), site) {
		return nil, fmt.Errorf("site rebuild %s: %s takes no part in PostgreSQL replication (replicating sites: %s)", site, site, orNone(strings.Join(d.SiteNames(), ", ")))
	}
	lives, errs := readAll(ctx, sess, d)
	if len(errs) > 0 {
		var bad []string
		for _, s := range slices.Sorted(maps.Keys(errs)) {
			bad = append(bad, fmt.Sprintf("%s (%v)", s, errs[s]))
		}
		return nil, fmt.Errorf("site rebuild %s: every replicating site's database must answer; cannot read %s", site, strings.Join(bad, "; "))
	}
	// The rows come from the peers and go to them: a peer that is itself an old
	// instance or half rebuilt is no source and no target.
	fences := checkFences(ctx, sess, d.SiteNames())
	delete(fences, site)
	if len(fences) > 0 {
		var bad []string
		for _, s := range slices.Sorted(maps.Keys(fences)) {
			bad = append(bad, fences[s].Error())
		}
		return nil, fmt.Errorf("site rebuild %s: a peer is not fit to rebuild from: %s", site, strings.Join(bad, "; "))
	}
	r := &Rebuild{Site: site, topo: topo, sess: sess, d: d, opts: opts,
		p: &Planned{sess: sess, opts: Options{Wait: opts.Wait}, Changes: map[string][]Change{}, Errors: map[string]error{}}}
	if err := r.generation(ctx); err != nil {
		return nil, err
	}
	// The flows of the rebuilt site get names of its new generation: its old
	// instance's subscriptions name slots that are gone (fencing in PostgreSQL).
	gens := siteGenerations(ctx, sess, d.SiteNames())
	gens[site] = r.Generation
	if r.d, err = BuildAt(topo, gens); err != nil {
		return nil, err
	}
	if err := r.planSteps(ctx, lives); err != nil {
		return nil, fmt.Errorf("site rebuild %s: %w", site, err)
	}
	return r, nil
}

// generation reads every site's generation table and decides the new generation,
// or a resumed one.
func (r *Rebuild) generation(ctx context.Context) error {
	var own Generation
	var recorded int64
	for _, n := range r.d.SiteNames() {
		pool, err := r.sess.Pool(ctx, n)
		if err != nil {
			return err
		}
		gens, err := ReadGenerations(ctx, pool)
		if err != nil {
			return fmt.Errorf("%s: read %s: %w", n, GenerationTable, err)
		}
		g := gens[r.Site]
		if n == r.Site {
			own = g
			continue
		}
		// A peer recording a rebuild that has not finished still has the one
		// before it as the site's last working generation.
		from := g.Generation
		if g.State == GenRebuilding {
			from--
		}
		r.From = max(r.From, from)
		recorded = max(recorded, g.Generation)
	}
	// A rebuild stopped while it marked the generation active at some peers (they
	// record "active G", the site itself still "rebuilding G") is resumed too.
	r.Resumed = own.State == GenRebuilding && own.Generation > 0 && own.Generation >= recorded
	r.Generation = max(r.From, own.Generation) + 1
	if r.Resumed {
		r.Generation = own.Generation
	}
	return nil
}

func (r *Rebuild) planSteps(ctx context.Context, lives map[string]*Live) error {
	live := lives[r.Site]
	if err := r.planClear(ctx, live); err != nil {
		return err
	}
	r.add(r.Site, plan.Update, "generation "+r.Site, []string{fmt.Sprintf("generation %d → %d (rebuilding), recorded at %s", r.From, r.Generation, strings.Join(r.d.SiteNames(), ", "))},
		"an old instance that comes back is refused by plan and deploy", r.recordGeneration(GenRebuilding))
	r.planDropOld(lives)
	if schema, err := LoadSchema(r.topo, r.topo.Site(r.Site)); err != nil {
		return err
	} else if schema != nil && (live.SchemaSHA != schema.SHA256 || len(live.Tables) < len(r.d.Tables)) {
		r.add(r.Site, plan.Update, "schema", []string{"apply " + r.topo.Site(r.Site).Postgres.SchemaFile}, "",
			func(ctx context.Context) error {
				return r.onSite(ctx, r.Site, func(p *pgxpool.Pool) error { return applySchema(ctx, r.topo, r.Site, p) })
			})
	}
	// The subscriptions' initial copies (other owners' rows) run while the site's
	// own rows are copied back; then they are waited for.
	subs := r.d.Subscriptions[r.Site]
	held := make([]int64, len(subs))
	for i := range subs {
		s := &subs[i]
		n, err := heldRows(ctx, r.sess, s.Flow.From, r.d.Tables, s.Flow.Filter)
		if err != nil {
			return err
		}
		held[i] = n
		r.add(r.Site, plan.Create, "subscription "+s.Name, []string{fmt.Sprintf("from %s, with its initial copy: %d rows (%s)", s.Flow.From, n, s.Flow.Filter)},
			"the other sites' rows; the copy runs during the next steps", r.subscribe(s))
	}
	if err := r.planOwnRows(ctx); err != nil {
		return err
	}
	if err := r.planRestoredRows(ctx); err != nil {
		return err
	}
	for i := range subs {
		r.add(r.Site, plan.Update, "initial copy of "+subs[i].Name, []string{fmt.Sprintf("wait until every table is ready (%d rows from %s)", held[i], subs[i].Flow.From)}, "",
			r.waitCopied(&subs[i], held[i]))
	}
	r.planOutFlows(lives)
	r.add(r.Site, plan.Update, "verify", []string{"per table and owning site: row count and checksum equal on " + strings.Join(r.d.SiteNames(), ", ")}, "", r.verify)
	// The application role last: the application cannot write at the site before
	// it is rebuilt and verified (a row written mid-way could reach a peer twice).
	if err := r.planAppRole(ctx); err != nil {
		return err
	}
	r.add(r.Site, plan.Update, "generation "+r.Site, []string{fmt.Sprintf("generation %d: rebuilding → active", r.Generation)}, "", r.recordGeneration(GenActive))
	return nil
}

// planAppRole plans the application role (postgres.app_user), after the
// verification: roles live in the cluster, so a new instance has none, and the
// application cannot log in until the rebuild is verified.
func (r *Rebuild) planAppRole(ctx context.Context) error {
	ex := Extras{Roles: map[string]RoleChange{}}
	site := r.topo.Site(r.Site)
	if err := checkRole(ctx, r.sess, site, ex); err != nil {
		return err
	}
	rc, ok := ex.Roles[r.Site]
	if !ok || len(rc.Diff) == 0 {
		return nil
	}
	r.add(r.Site, rc.Action, "application role "+rc.User, rc.Diff, "", func(ctx context.Context) error {
		pw, err := site.Postgres.AppPassword.Resolve()
		if err != nil {
			return err
		}
		return r.onSite(ctx, r.Site, func(p *pgxpool.Pool) error {
			return ApplyRole(ctx, p, site.Postgres.AppUser, site.Postgres.User, pw)
		})
	})
	return nil
}

// planDropOld plans dropping, on the peers, what served the old instance: their
// subscriptions to it (its slots died with it, or --force drops them) and the
// slots its subscriptions used there, which it would take again if it came back.
func (r *Rebuild) planDropOld(lives map[string]*Live) {
	live := lives[r.Site]
	for _, pub := range r.d.Publications[r.Site] {
		want := pub.SlotName()
		for _, name := range slices.Sorted(maps.Keys(lives[pub.Flow.To].Subscriptions)) {
			if (name != want && pub.Flow.flowOfSlot(name)) || (name == want && live.Slots[name] == nil) {
				r.add(pub.Flow.To, plan.Remove, "subscription "+name, nil,
					"the old instance's: its slot on "+r.Site+" died with it", r.dropSubscription(pub.Flow.To, name))
			}
		}
	}
	for _, s := range r.d.Subscriptions[r.Site] {
		for _, name := range slices.Sorted(maps.Keys(lives[s.Flow.From].Slots)) {
			if name != s.Name && s.Flow.flowOfSlot(name) {
				r.add(s.Flow.From, plan.Remove, "slot "+name, []string{"the old instance's subscription used it; the rebuilt " + r.Site + "'s is " + s.Name},
					"an old instance that comes back finds no slot to take", r.dropPeerSlot(s.Flow.From, name))
			}
		}
	}
}

// planClear refuses a database that is not empty (unless Force, then plans
// clearing it) and is not a rebuild being resumed.
func (r *Rebuild) planClear(ctx context.Context, live *Live) error {
	if r.Resumed {
		return nil
	}
	held, err := heldRows(ctx, r.sess, r.Site, r.d.Tables, "true")
	if err != nil {
		return err
	}
	objects := slices.Concat(slices.Sorted(maps.Keys(live.Subscriptions)), slices.Sorted(maps.Keys(live.Publications)), slices.Sorted(maps.Keys(live.Slots)))
	if held == 0 && len(objects) == 0 {
		return nil
	}
	site := r.topo.Site(r.Site)
	what := fmt.Sprintf("%d replicated rows", held)
	if len(objects) > 0 {
		what += " and replication objects " + strings.Join(objects, ", ")
	}
	if !r.opts.Force {
		return fmt.Errorf("its database at %s:%d answers and holds %s: a rebuild is for a site whose database was lost and replaced by an empty one. If this database is to be replaced all the same, re-run with --force (its rows are dropped there, and copied back from the peers; rows it owns that never left it are lost)",
			site.Postgres.Host, site.Postgres.Port, what)
	}
	r.cleared = true
	r.add(r.Site, plan.Remove, "database contents", []string{"drop " + what}, "--force: only on "+r.Site+", never on a peer", func(ctx context.Context) error {
		return r.onSite(ctx, r.Site, func(pool *pgxpool.Pool) error { return clearSite(ctx, pool, live, r.d.Tables) })
	})
	return nil
}

// clearSite drops a site's sitectl subscriptions, publications and slots and
// empties its replicated tables (--force).
func clearSite(ctx context.Context, pool *pgxpool.Pool, live *Live, tables []string) error {
	for _, name := range slices.Sorted(maps.Keys(live.Subscriptions)) {
		if err := dropSubscriptionOn(ctx, pool, name); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(live.Publications)) {
		if _, err := pool.Exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteIdent(name)); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(live.Slots)) {
		if err := dropSlot(ctx, pool, name); err != nil {
			return err
		}
	}
	var present []string
	for _, t := range tables {
		if live.Tables[t] != nil {
			present = append(present, quoteTable(t))
		}
	}
	if len(present) == 0 {
		return nil
	}
	_, err := pool.Exec(ctx, "TRUNCATE "+strings.Join(present, ", "))
	return err
}

// planOwnRows plans copying the site's own rows back from the peer holding most.
func (r *Rebuild) planOwnRows(ctx context.Context) error {
	where := ownerFilter(r.Site)
	var best int64 = -1
	for _, pub := range r.d.Publications[r.Site] {
		n, err := heldRows(ctx, r.sess, pub.Flow.To, r.d.Tables, where)
		if err != nil {
			return err
		}
		if n > best {
			best, r.OwnSource = n, pub.Flow.To
		}
	}
	if r.OwnSource == "" {
		return nil
	}
	r.add(r.Site, plan.Create, "rows of "+r.Site+" from "+r.OwnSource, []string{fmt.Sprintf("%d rows (%s), copied with COPY, table by table", best, where)},
		"only the rows missing here: a re-run copies nothing twice; the highest key copied is recorded for site reconcile; the peers' checksums for the verification are read meanwhile", func(ctx context.Context) error {
			r.startPeerSums(ctx)
			if err := r.copyRows(ctx, r.OwnSource, r.Site, []string{r.Site}, "true"); err != nil {
				return err
			}
			return r.onSite(ctx, r.Site, func(p *pgxpool.Pool) error { return recordMarks(ctx, p, r.Site, r.Generation, r.d.Tables) })
		})
	return nil
}

// planOutFlows plans the flows the site publishes: with its subscriptions paused
// where a row they bring could be published on (needsPause), each publication and
// slot, the rows the subscriber lacks, then the subscriber's subscription without
// initial copy; then the site's subscriptions resumed.
func (r *Rebuild) planOutFlows(lives map[string]*Live) {
	pubs := r.d.Publications[r.Site]
	if len(pubs) == 0 {
		return
	}
	var ins []string
	for _, s := range r.d.Subscriptions[r.Site] {
		ins = append(ins, s.Name)
	}
	if r.needsPause() {
		r.add(r.Site, plan.Update, "pause subscriptions", []string{strings.Join(ins, ", ")},
			"nothing arrives while the slots below are made and the peers caught up", r.pause(ins, true))
	}
	for i := range pubs {
		pub := &pubs[i]
		if lives[r.Site].Publications[pub.Name] == nil || r.cleared {
			r.add(r.Site, plan.Create, "publication "+pub.Name, []string{"flow: " + pub.Flow.String(), "row filter: " + pub.Flow.Filter}, "",
				func(ctx context.Context) error { return r.createPublication(ctx, pub) })
		}
		r.add(r.Site, plan.Create, "slot "+pub.SlotName(), []string{"for " + pub.Flow.To + "'s subscription, made after every row above is here"}, "", r.makeSlot(pub))
		owners, skipped := r.catchUp(pub)
		if len(owners) > 0 {
			r.add(pub.Flow.To, plan.Create, "rows "+pub.Flow.To+" lacks", []string{fmt.Sprintf("rows of %s in %s that %s lacks, compared by count and checksum per table and owner", strings.Join(owners, ", "), r.Site, pub.Flow.To)},
				"never deletes or changes a row there", func(ctx context.Context) error {
					return r.copyRows(ctx, r.Site, pub.Flow.To, owners, pub.Flow.Filter)
				})
		}
		diff := []string{"from " + r.Site + ", publication " + pub.Name, "options: disable_on_error = true, copy_data = false (its rows are there already)"}
		if len(skipped) > 0 {
			diff = append(diff, fmt.Sprintf("rows of %s: copied from %s above, compared by the verification", strings.Join(skipped, ", "), pub.Flow.To))
		}
		r.add(pub.Flow.To, plan.Create, "subscription "+pub.SlotName(), diff, "", r.subscribeNoCopy(pub))
	}
	r.add(r.Site, plan.Update, "resume subscriptions", []string{strings.Join(ins, ", ")}, "", r.pause(ins, false))
}

func (r *Rebuild) add(site string, action plan.Action, name string, diff []string, note string, apply func(context.Context) error) {
	r.Steps = append(r.Steps, plan.Step{Site: site, Component: ComponentPostgres, Action: action, Name: name, Diff: diff, Note: note, Apply: apply})
}

// onSite runs fn with the site's pool.
func (r *Rebuild) onSite(ctx context.Context, site string, fn func(*pgxpool.Pool) error) error {
	pool, err := r.sess.Pool(ctx, site)
	if err != nil {
		return err
	}
	if err := fn(pool); err != nil {
		return fmt.Errorf("%s: %w", site, err)
	}
	return nil
}

// Plan is the rebuild as a printable plan, its steps under the sites they change.
func (r *Rebuild) Plan(env string) *plan.Plan {
	out := &plan.Plan{Env: env}
	for _, s := range r.Steps {
		if n := len(out.Sites); n == 0 || out.Sites[n-1].Site != s.Site {
			out.Sites = append(out.Sites, plan.SitePlan{Site: s.Site})
		}
		sp := &out.Sites[len(out.Sites)-1]
		sp.Steps = append(sp.Steps, s)
	}
	return out
}

// Run applies the steps in order; report is as plan.Apply's.
func (r *Rebuild) Run(ctx context.Context, report func(plan.Step) func(error)) error {
	_, err := plan.Apply(ctx, r.Steps, report)
	if err != nil {
		return fmt.Errorf("site rebuild %s (generation %d, recorded as rebuilding: re-run to resume): %w", r.Site, r.Generation, err)
	}
	return nil
}
