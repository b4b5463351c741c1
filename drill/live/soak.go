package live

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/pgdrill"
	"github.com/sitectl/sitectl/drill/soak"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/traffic"
)

// SoakTargets are what each soak fault can hit in topo: partition a spoke with a
// link, cloud-loss the hub's links, node-loss a worker node, db-down a site running
// the postgres stack, api-kill one running the django-api stack or app.
func SoakTargets(topo *sites.Topology) soak.Targets {
	t := soak.Targets{Nodes: map[string][]string{}}
	if len(topo.LinksOf(topo.Hub)) > 0 {
		t.Hub = topo.Hub
	}
	for _, s := range topo.Sites {
		if s.Name != topo.Hub && len(topo.LinksOf(s.Name)) > 0 {
			t.Spokes = append(t.Spokes, s.Name)
		}
		for _, n := range s.Nodes {
			if n.Role == "worker" {
				t.Nodes[s.Name] = append(t.Nodes[s.Name], n.Name)
			}
		}
		if s.HasStack("postgres") {
			t.DB = append(t.DB, s.Name)
		}
		if topo.Runs(s.Name, "django-api") { // the built-in stack or the app
			t.API = append(t.API, s.Name)
		}
	}
	return t
}

// SoakRunner runs each soak step as a drill built by Build, healed and verified
// before it returns; with Watch, the clients' phases follow each step's fault
// ("#3 before", "#3 during", "#3 after") and the writes they made through the API
// in the step are verified after its heal.
type SoakRunner struct {
	Topo     *sites.Topology
	Settings drill.Settings
	Progress *progress.Printer
	// Watch and Entries, when set, are the --load clients (running for the whole soak).
	Watch   *traffic.Watch
	Entries []traffic.Entry

	mu   sync.Mutex
	runs map[string][]drill.Attempt // each step's drill writes, by run
}

var _ soak.Runner = (*SoakRunner)(nil)

// Step runs one fault as a drill.
func (r *SoakRunner) Step(ctx context.Context, s soak.Step) soak.StepResult {
	started := time.Now()
	d, closeAll, err := Build(ctx, r.Topo, Options{Kind: s.Kind, Site: s.Site, Node: s.Node, Settings: r.Settings, Progress: r.Progress})
	if err != nil {
		return soak.StepResult{Step: s, Started: started, Finished: time.Now(), Summary: err.Error(), Failed: []string{err.Error()}}
	}
	defer closeAll()
	prefix := fmt.Sprintf("#%d ", s.N)
	if r.Watch != nil {
		r.Watch.Phase(prefix + "before")
		d.OnEvent = func(e drill.Event) {
			switch e.Kind {
			case drill.EvCut, drill.EvDown:
				r.Watch.Phase(prefix + "during")
			case drill.EvHeal, drill.EvRestore:
				r.Watch.Phase(prefix + "after")
			}
		}
	}
	rep := d.Run(ctx)
	if a := rep.Attempts(); len(a) > 0 {
		r.mu.Lock()
		if r.runs == nil {
			r.runs = map[string][]drill.Attempt{}
		}
		r.runs[rep.Run] = a
		r.mu.Unlock()
	}
	if r.Watch != nil {
		for _, a := range r.Watch.Snapshot(r.Entries) {
			if strings.HasPrefix(a.Phase, prefix) {
				rep.Availability = append(rep.Availability, a)
			}
		}
		if !rep.Interrupted && !rep.HealFailed {
			var mine []traffic.Write
			for _, w := range r.Watch.Writes() {
				if strings.HasPrefix(w.Phase, prefix) {
					mine = append(mine, w)
				}
			}
			rep.AddAPIWrites(VerifyAPIWrites(ctx, r.Topo, mine, r.Settings.Converge))
		}
	}
	return soak.FromDrill(s, started, rep)
}

// Final reads again, at every site, the rows of every drill the soak ran and the
// rows written through the API, and verifies them all: each acknowledged write
// present exactly once wherever it should be, every subscription streaming.
func (r *SoakRunner) Final(ctx context.Context) drill.Verdict {
	r.mu.Lock()
	runs := make([]string, 0, len(r.runs))
	var attempts []drill.Attempt
	for run, a := range r.runs {
		runs = append(runs, run)
		attempts = append(attempts, a...)
	}
	r.mu.Unlock()
	slices.Sort(runs)
	sess := postgres.NewSession(r.Topo)
	defer sess.Close()
	// A site that cannot be read (a loaded database timing out) is read again until
	// the convergence timeout; one still unreadable then fails the verification by
	// name, and its rows are not counted as lost.
	holdings := map[string][]drill.Row{}
	var readErr []string
	deadline := time.Now().Add(max(r.Settings.Converge, 10*time.Second))
	for _, s := range r.Topo.Sites {
		if !s.HasStack("postgres") {
			continue
		}
		rows, err := r.readRuns(ctx, sess, s.Name, runs, deadline)
		if err != nil {
			readErr = append(readErr, err.Error())
			continue
		}
		holdings[s.Name] = rows
	}
	obs := pgdrill.LiveObserver(r.Topo, sess.Pool)
	after, err := obs.Flows(ctx)
	if err != nil {
		readErr = append(readErr, "replication flows: "+err.Error())
	}
	v := drill.Verify(drill.VerifyInput{Attempts: attempts, Holdings: holdings, Place: drill.FlowPlacement(r.Topo.Flows), Before: after, After: after})
	if len(readErr) > 0 {
		v.Checks = append(v.Checks, drill.Check{Name: "read", Detail: strings.Join(readErr, "; ")})
		v.Passed = false
	}
	if r.Watch != nil {
		api := VerifyAPIWrites(ctx, r.Topo, r.Watch.Writes(), r.Settings.Converge)
		v.Lost += api.Lost
		v.Duplicated += api.Duplicated
		v.Acked += api.Acked
		for _, c := range api.Checks {
			c.Name = "API writes " + c.Name
			v.Checks = append(v.Checks, c)
		}
		v.Passed = v.Passed && api.Passed
	}
	return v
}

// readRuns reads the rows of every run at site, trying again until deadline.
func (r *SoakRunner) readRuns(ctx context.Context, sess *postgres.Session, site string, runs []string, deadline time.Time) ([]drill.Row, error) {
	st := pgdrill.LazyStore{Site: site, Get: sess.Pool}
	for {
		out := []drill.Row{}
		var err error
		for _, run := range runs {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			rows, rerr := st.Rows(cctx, run)
			cancel()
			if rerr != nil {
				err = fmt.Errorf("read %s's rows at %s: %w", run, site, rerr)
				break
			}
			out = append(out, rows...)
		}
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(2 * time.Second)
	}
}
