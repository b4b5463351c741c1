package drill

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/sites"
)

// Drill injects faults, has every site write its own rows while they are in place,
// always removes them, waits for convergence and verifies. `partition` cuts one
// site's links, `cloud-loss` every link to the hub, `db-down` stops a site's database
// service, `node-loss` drains a swarm node.
type Drill struct {
	Kind  string // partition, cloud-loss, db-down, node-loss
	Topo  *sites.Topology
	Site  string       // the site the drill is about; empty for cloud-loss
	Node  string       // node-loss: the node
	Links []sites.Link // the links the faults cut (for the sides and the report)

	Faults []Fault
	// DownSites are the sites whose database is expected to refuse writes during
	// the faults (db-down); every other site is expected to keep writing.
	DownSites []string
	Probes    []Probe
	// PreWrites rows are written at every site before the faults; the verdict then
	// also proves they survived (a restarted database, a drained node).
	PreWrites int

	Stores   map[string]Store // one per site running PostgreSQL
	Checker  LinkChecker      // optional
	Observer Observer
	Resyncer Resyncer    // optional: re-enable replication after the heal
	Mongo    []MongoSide // optional: the sites' MongoDB members, one per side
	// Journal, when set, records the faults before they are injected and forgets
	// them once they are removed; every fault must then be Recordable.
	Journal Journal
	// Alerting, when its Reader is set, watches the alerting path: the alerts the
	// faults raise reach the receiver and resolve after the heal.
	Alerting Alerting

	Settings Settings
	Progress *progress.Printer
	// RunID names this run's rows; empty mints one.
	RunID string
	// OnEvent, when set, is called after each timeline event (tests use it to
	// interrupt a drill at a precise moment).
	OnEvent func(Event)

	now   func() time.Time
	sleep func(time.Duration)
	smp   *sampler

	pmu      sync.Mutex
	panicked any // a panic caught in a drill goroutine, raised again by rethrow
}

// writeTimeout bounds one write (a site whose database is down must not stall the
// drill). A write that has not returned by then is the site not answering. It was
// 3 s until a 30-minute soak on the lab failed a cloud-loss step on one write of 300
// (the hub's own, at load average ~30 on two cores): a commit that takes seconds on
// a starved machine is slow, not refused; ten seconds is still far beyond any
// healthy commit and a down database refuses at once.
const writeTimeout = 10 * time.Second

// caughtUpGrace bounds the wait, after convergence, for PostgreSQL to report every
// flow caught up.
const caughtUpGrace = 10 * time.Second

// Run runs the drill and returns its report; the report says whether it passed. The
// links are always healed before Run returns, whatever happened (a failing step, ctx
// cancelled by SIGINT/SIGTERM or its deadline, a panic).
func (p *Drill) Run(ctx context.Context) *Report {
	s := p.start()
	rep := p.newReport(s)
	rec := &recorder{now: p.now, hook: p.OnEvent}
	h := &healer{resync: p.Resyncer, obs: p.Observer, settings: s, rec: rec, prog: p.Progress, sleep: p.sleep}
	ev := rec.event
	defer func() {
		// Whatever ends the drill, heal what was cut, then seal the report.
		rep.Heal = h.healAll(ctx)
		rep.HealFailed = healFailed(rep.Heal)
		rep.RecordError = h.recordErr
		rep.Faults, rep.Window = faultWindow(h.faultTimes(), s.Duration)
		if r := recover(); r != nil {
			rep.Error = fmt.Sprintf("drill panicked: %v (faults removed: %t)", r, !rep.HealFailed)
		}
		if ctx.Err() != nil && !rep.Interrupted && rep.Verdict == nil {
			// Stopped (SIGINT, SIGTERM, --timeout) in a step that did not say so:
			// whatever failed there failed because of the interruption.
			p.interrupted(ctx, rep, rec.event)
		}
		rec.into(rep)
		rep.finish(p.now())
	}()

	// 1. Preflight.
	end := p.Progress.Step("preflight: %d site(s), %d link(s), replication", len(p.Stores), len(p.Topo.Links))
	before, err := p.preflight(ctx, s, rep)
	end(err)
	ev(EvPreflight, "", checksSummary(rep.Preflight))
	if err != nil {
		rep.Error = err.Error()
		return rep
	}

	smp, stop := p.startSampling(ctx, s, rec)
	defer func() { stop(); p.rethrow() }()

	// Alertmanager is watched from before the faults to the end.
	aw, stopAlerts := p.startAlerts(ctx, s)
	stopAlerts = sync.OnceFunc(stopAlerts)
	defer stopAlerts()

	// 2. Record, then inject.
	pre, cutAt, ok := p.inject(ctx, rep, h, ev)
	if !ok {
		return rep
	}
	// The faults last Duration from the moment the last one took effect: the
	// writes, the probes and the MongoDB writes all happen inside that window and
	// stop at its end, however slow a site is.
	until := cutAt.Add(s.Duration)
	wctx, cancelWindow := context.WithDeadline(ctx, until)
	defer cancelWindow()
	p.checkCut(wctx, rep)

	// 3. Write on every side, probe and write to MongoDB, together, while the
	// faults are in place.
	w := p.underFaults(wctx, s, until, ev)
	rep.Writes = w.stats
	if err := p.hold(ctx, until); err != nil || ctx.Err() != nil {
		// Interrupted: what was written or probed so far says nothing about the
		// sites (a write cancelled by SIGINT is not a site refusing it).
		p.interrupted(ctx, rep, ev)
		return rep
	}
	attempts := append(pre, w.attempts...)
	rep.attempts = attempts
	rep.Observations = append(rep.Observations, p.writeObservations(w.stats)...)
	for _, o := range w.probed {
		rep.Observations = append(rep.Observations, o...)
	}

	// 4. Heal (the deferred heal then has nothing left to do).
	rep.Heal = h.healAll(ctx)
	healAt := h.removedAt
	if healFailed(rep.Heal) {
		rep.Error = "heal failed: see the heal table; a fault is still in place"
		return rep
	}
	smp.healed(healAt)
	if p.Checker != nil {
		p.waitLinks(ctx, s)
	}

	// 5. Converge, 6. verify.
	holdings, ok := p.convergeAll(ctx, s, rep, attempts, healAt, ev)
	if !ok {
		return rep
	}
	p.waitCaughtUp(s, rep, rec, healAt, stop)
	p.verify(ctx, rep, attempts, holdings, before, w.mongo, ev)
	// 7. The alerting path: what the faults raised, notified and resolved.
	_, win := faultWindow(h.faultTimes(), s.Duration)
	if win != nil {
		p.alertsSeen(ctx, rep, aw, stopAlerts, win, rec)
	}
	return rep
}

// startSampling starts lag sampling, which runs until the drill ends, detached from
// ctx so the post-heal convergence of an interrupted drill is still sampled while
// it heals. stop ends it and waits for it.
func (p *Drill) startSampling(ctx context.Context, s Settings, rec *recorder) (smp *sampler, stop func()) {
	smp = &sampler{obs: p.Observer, rec: rec, now: p.now, every: s.Sample}
	p.smp = smp
	sctx, stopSampling := context.WithCancel(context.WithoutCancel(ctx))
	var swg sync.WaitGroup
	swg.Add(1)
	go func() { defer swg.Done(); defer p.catch(); smp.run(sctx) }()
	return smp, func() { stopSampling(); swg.Wait() }
}

// start fills the defaults of a drill about to run and returns its settings.
func (p *Drill) start() Settings {
	if p.now == nil {
		p.now = time.Now
	}
	if p.sleep == nil {
		p.sleep = time.Sleep
	}
	if p.Observer == nil { // no PostgreSQL replication to watch (a MongoDB-only drill)
		p.Observer = noFlows{}
	}
	if p.RunID == "" {
		p.RunID = "dr-" + uuid.Must(uuid.NewV7()).String()[:13]
	}
	return p.Settings.withDefaults()
}

// newReport starts the drill's report.
func (p *Drill) newReport(s Settings) *Report {
	rep := &Report{Drill: p.Kind, Env: p.Topo.Env, Run: p.RunID, Site: p.Site, Started: p.now(),
		Settings: ReportSetting{Duration: Seconds(s.Duration.Seconds()), Writes: s.Writes}}
	for _, l := range p.Links {
		rep.Links = append(rep.Links, l.Name())
	}
	rep.Sides = Sides(p.Topo, p.Links)
	return rep
}

func linkDetail(up bool, err error) string {
	switch {
	case err != nil:
		return "could not check: " + err.Error()
	case up:
		return "the link still reports up: the cut did not take"
	}
	return "no SA installed"
}

// record reads what every fault will have to put back and keeps it in the Journal
// before anything is injected.
func (p *Drill) record(ctx context.Context, h *healer) error {
	if p.Journal == nil {
		return nil
	}
	r := Record{Run: p.RunID, Drill: p.Kind, Env: p.Topo.Env, Site: p.Site, Started: p.now(), PID: os.Getpid()}
	r.Host, _ = os.Hostname()
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	r.Owner = fmt.Sprintf("%s@%s pid %d", who, r.Host, r.PID)
	for _, f := range p.Faults {
		rf, ok := f.(Recordable)
		if !ok {
			return fmt.Errorf("record the faults before injecting them: %s cannot be recorded; nothing was injected", f.Name())
		}
		fr, err := rf.Record(ctx)
		if err != nil {
			return fmt.Errorf("read %s before injecting it: %w; nothing was injected", f.Name(), err)
		}
		r.Faults = append(r.Faults, fr)
	}
	end := p.Progress.Step("record the fault(s) in the swarm of %s", strings.Join(r.Sites(), ", "))
	err := p.Journal.Open(ctx, r)
	end(err)
	if err != nil {
		return fmt.Errorf("record the faults before injecting them: %w; nothing was injected", err)
	}
	h.journal = p.Journal
	return nil
}

// interrupted marks the report of a drill SIGINT, SIGTERM or its deadline stopped:
// the faults are removed (the deferred heal), nothing is verified, and nothing it
// saw counts against the sites.
func (p *Drill) interrupted(ctx context.Context, rep *Report, ev func(kind, target, detail string) time.Time) {
	why := context.Cause(ctx)
	if why == nil {
		why = context.Canceled
	}
	rep.Interrupted = true
	ev(EvInterrupted, "", why.Error())
	rep.Error = "interrupted: " + why.Error() + "; nothing verified"
	rep.Observations = nil
	rep.Verdict = nil
	// A preflight check the interruption cut short is not a site failing it.
	var kept []Check
	for _, c := range rep.Preflight {
		if c.Passed {
			kept = append(kept, c)
		}
	}
	rep.Preflight = kept
}

// hold waits until the end of the cut, or ctx.
func (p *Drill) hold(ctx context.Context, until time.Time) error {
	d := until.Sub(p.now())
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// waitLinks waits (bounded) for the healed links to report up again.
func (p *Drill) waitLinks(ctx context.Context, s Settings) {
	deadline := p.now().Add(s.Converge)
	for _, l := range p.Links {
		for p.now().Before(deadline) && ctx.Err() == nil {
			if up, err := p.Checker.LinkUp(ctx, l); err == nil && up {
				break
			}
			p.sleep(s.Sample)
		}
	}
}

// Sides returns the groups of sites that can still reach each other with links cut.
func Sides(topo *sites.Topology, cut []sites.Link) [][]string {
	isCut := map[string]bool{}
	for _, l := range cut {
		isCut[l.Name()] = true
	}
	parent := map[string]string{}
	var find func(string) string
	find = func(s string) string {
		if parent[s] == s {
			return s
		}
		parent[s] = find(parent[s])
		return parent[s]
	}
	for _, s := range topo.SiteNames() {
		parent[s] = s
	}
	for _, l := range topo.Links {
		if !isCut[l.Name()] {
			parent[find(l.A)] = find(l.B)
		}
	}
	groups := map[string][]string{}
	for _, s := range topo.SiteNames() {
		groups[find(s)] = append(groups[find(s)], s)
	}
	var out [][]string
	for _, g := range groups {
		sort.Strings(g)
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i], ",") < strings.Join(out[j], ",") })
	return out
}

func checksSummary(cs []Check) string {
	failed := 0
	for _, c := range cs {
		if !c.Passed {
			failed++
		}
	}
	if failed == 0 {
		return fmt.Sprintf("%d check(s) passed", len(cs))
	}
	return fmt.Sprintf("%d of %d check(s) failed", failed, len(cs))
}

// noFlows is the Observer of a drill without PostgreSQL replication.
type noFlows struct{}

func (noFlows) Flows(context.Context) ([]FlowState, error) { return nil, nil }

// catch, deferred first in every goroutine a drill starts, keeps a panic there from
// ending the process with the links still cut: the first one is held, and rethrow
// raises it again in Run's goroutine, whose deferred heal then runs.
func (p *Drill) catch() {
	if r := recover(); r != nil {
		p.pmu.Lock()
		if p.panicked == nil {
			p.panicked = r
		}
		p.pmu.Unlock()
	}
}

// rethrow raises in the caller's goroutine a panic a drill goroutine caught.
func (p *Drill) rethrow() {
	p.pmu.Lock()
	r := p.panicked
	p.panicked = nil
	p.pmu.Unlock()
	if r != nil {
		panic(r)
	}
}
