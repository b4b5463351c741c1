package live

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/pgdrill"
	"github.com/sitectl/sitectl/drill/swarmfault"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// Leftover is one drill run's record as found in the swarms read: a drill running
// now, or one that ended without removing its faults.
type Leftover struct {
	swarmfault.Left
	// FoundIn are the sites whose swarm holds a copy.
	FoundIn []string `json:"found_in"`
}

// readTimeout bounds reading one site's records (the engine's own ping waits 10 s).
const readTimeout = 15 * time.Second

// Leftovers reads the drill records in the swarms of the named sites (every site
// when none), one entry per run. A site whose engine does not answer, or that has
// no swarm yet, is returned in errs: nothing is known about it.
func Leftovers(ctx context.Context, topo *sites.Topology, names []string) (found []Leftover, errs []error) {
	if len(names) == 0 {
		names = topo.SiteNames()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	byRun := map[string]*Leftover{}
	for _, name := range names {
		s := topo.Site(name)
		if s == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, readTimeout)
			defer cancel()
			e, err := engine.ForSite(rctx, s)
			var recs []swarmfault.Left
			if err == nil {
				recs, err = swarmfault.ReadRecords(rctx, name, e)
				_ = e.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for _, r := range recs {
				if l := byRun[r.Run]; l != nil {
					l.FoundIn = append(l.FoundIn, name)
					if r.Heartbeat.After(l.Heartbeat) {
						l.Heartbeat = r.Heartbeat
					}
					continue
				}
				byRun[r.Run] = &Leftover{Left: r, FoundIn: []string{name}}
			}
		}()
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	for _, l := range byRun {
		sort.Strings(l.FoundIn)
		found = append(found, *l)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Started.Before(found[j].Started) })
	return found, errs
}

// HealOutcome is what `sitectl drill heal` did about one drill's record.
type HealOutcome struct {
	Run     string             `json:"run"`
	Drill   string             `json:"drill"`
	Site    string             `json:"site,omitempty"`
	Left    string             `json:"left"`
	Started time.Time          `json:"started"`
	Owner   string             `json:"owner"`
	Heal    []drill.HealResult `json:"heal,omitempty"`
	// Healed: every fault removed and the record cleared from every swarm.
	Healed bool   `json:"healed"`
	Error  string `json:"error,omitempty"`
}

// Heal removes what dead drills left, as their records in the named sites' swarms
// (every site when none) describe it, then clears the records. It is idempotent: a
// fault already removed is removed again harmlessly, and no record means nothing to
// do. It refuses a record whose drill still runs. unreadable names the sites whose
// swarm could not be read.
func Heal(ctx context.Context, topo *sites.Topology, names []string, prog *progress.Printer) (out []HealOutcome, unreadable []error) {
	left, unreadable := Leftovers(ctx, topo, names)
	if len(left) == 0 {
		return nil, unreadable
	}
	engines := map[string]*client.Client{}
	siteEngine := func(name string) (*client.Client, error) {
		if e := engines[name]; e != nil {
			return e, nil
		}
		s := topo.Site(name)
		if s == nil {
			return nil, fmt.Errorf("the record names site %s, which the %s configuration does not have", name, topo.Env)
		}
		e, err := engine.ForSite(ctx, s)
		if err != nil {
			return nil, err
		}
		engines[name] = e
		return e, nil
	}
	sess := postgres.NewSession(topo)
	defer func() {
		sess.Close()
		for _, e := range engines {
			_ = e.Close()
		}
	}()
	now := time.Now()
	for _, l := range left {
		o := HealOutcome{Run: l.Run, Drill: l.Drill, Site: l.Site, Left: l.Summary(), Started: l.Started, Owner: l.Owner}
		if alive, why := l.Alive(now); alive {
			o.Error = fmt.Sprintf("the %s drill (run %s, %s) is still running (%s): it removes its faults itself; if it hangs, stop it (kill %d on %s) and run sitectl drill heal again",
				l.Drill, l.Run, l.Owner, why, l.PID, l.Host)
			out = append(out, o)
			continue
		}
		prog.Infof("healing what the %s drill run %s (%s, started %s) left: %s", l.Drill, l.Run, l.Owner, l.Started.UTC().Format(time.RFC3339), o.Left)
		faults, err := faultsOf(topo, l.Record, siteEngine)
		if err != nil {
			o.Error = err.Error()
			out = append(out, o)
			continue
		}
		var resync drill.Resyncer
		var obs drill.Observer
		if len(topo.Flows) > 0 {
			resync = Resync{Topo: topo, Sess: sess}
			obs = pgdrill.LiveObserver(topo, sess.Pool)
		}
		o.Heal = drill.HealLeft(ctx, faults, resync, obs, drill.Settings{}, prog)
		if !drill.Healed(o.Heal) {
			o.Error = "a fault is still in place (see the heal results); the record stays: run sitectl drill heal again once the cause is fixed"
			out = append(out, o)
			continue
		}
		if err := clearRecord(ctx, l.Record, siteEngine); err != nil {
			o.Error = "every fault was removed, but the record could not be cleared: " + err.Error()
		} else {
			o.Healed = true
		}
		out = append(out, o)
	}
	return out, unreadable
}

// faultsOf rebuilds the faults a record describes, in the order they were injected.
func faultsOf(topo *sites.Topology, r drill.Record, siteEngine func(string) (*client.Client, error)) ([]drill.Fault, error) {
	var out []drill.Fault
	for _, f := range r.Faults {
		switch f.Kind {
		case drill.RecordLink:
			link, err := topo.Link(f.Link)
			if err != nil {
				return nil, fmt.Errorf("record of run %s: %w", r.Run, err)
			}
			out = append(out, drill.LinkFault{Cutter: Tunnels{Topo: topo}, Link: link})
		case drill.RecordService, drill.RecordNode:
			e, err := siteEngine(f.Site)
			if err != nil {
				return nil, err
			}
			var fault drill.Fault
			if f.Kind == drill.RecordService {
				fault, err = swarmfault.ServiceDownFrom(f, e)
			} else {
				fault, err = swarmfault.NodeDrainFrom(f, e)
			}
			if err != nil {
				return nil, fmt.Errorf("record of run %s: %w", r.Run, err)
			}
			out = append(out, fault)
		default:
			return nil, fmt.Errorf("record of run %s: unknown fault kind %q (%s): written by a newer sitectl?", r.Run, f.Kind, f.What)
		}
	}
	return out, nil
}

// clearRecord removes the record from the swarm of every site its faults touch.
func clearRecord(ctx context.Context, r drill.Record, siteEngine func(string) (*client.Client, error)) error {
	var errs []error
	for _, name := range r.Sites() {
		e, err := siteEngine(name)
		if err == nil {
			err = swarmfault.RemoveRecord(ctx, e, swarmfault.RecordPrefix+r.Run)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
