package drill

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sitectl/sitectl/replication/keys"
)

func (p *Drill) storeSites() []string {
	out := make([]string, 0, len(p.Stores))
	for s := range p.Stores {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// write has every site write s.Writes rows, paced over 80% of the cut, and returns
// every attempt with whether it was acknowledged. Writing stops at until, the end
// of the faults' window (ctx ends then too): a write still in flight then is cut
// off, neither acknowledged nor failed.
func (p *Drill) write(ctx context.Context, s Settings, until time.Time, ev func(kind, target, detail string) time.Time) ([]Attempt, []WriteStats) {
	siteNames := p.storeSites()
	per := make([][]Attempt, len(siteNames))
	stats := make([]WriteStats, len(siteNames))
	interval := time.Duration(float64(s.Duration) * 0.8 / float64(s.Writes))
	end := p.Progress.Step("write %d row(s) at each of %s", s.Writes, strings.Join(siteNames, ", "))
	ev(EvWritesStart, "", fmt.Sprintf("%d per site", s.Writes))
	var wg sync.WaitGroup
	for i, site := range siteNames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.catch()
			per[i], stats[i] = p.writeSite(ctx, site, s.Writes, interval, until, 0)
		}()
	}
	wg.Wait()
	p.rethrow()
	var all []Attempt
	acked := 0
	for i := range per {
		all = append(all, per[i]...)
		acked += stats[i].Acked
	}
	// Writes refused at a site whose database the drill stopped are what the drill
	// expects (its observations check them); only the other sites' fail the step.
	down := p.downSites()
	n, of := 0, 0
	for _, st := range stats {
		if !down[st.Site] {
			n, of = n+st.Failed, of+st.Attempted
		}
	}
	var err error
	if n > 0 {
		err = fmt.Errorf("%d of %d write(s) not acknowledged", n, of)
	}
	end(err)
	for _, st := range stats {
		if st.Attempted < s.Writes && st.Failed == 0 {
			p.Progress.Infof("%s wrote %d of %d row(s) before the fault window closed (--duration %s)", st.Site, st.Attempted, s.Writes, s.Duration)
		}
		switch refused := st.Failed; {
		case !down[st.Site]:
		case refused > 0:
			p.Progress.Infof("%s refused %d of %d write(s): its database is down, as the drill intends", st.Site, refused, st.Attempted)
		default:
			p.Progress.Warnf("%s took all %d write(s) although its database should be down", st.Site, st.Attempted)
		}
	}
	ev(EvWritesEnd, "", fmt.Sprintf("%d of %d acknowledged", acked, len(all)))
	return all, stats
}

func (p *Drill) downSites() map[string]bool {
	down := map[string]bool{}
	for _, s := range p.DownSites {
		down[s] = true
	}
	return down
}

// writeSite writes n rows at site, paced by interval; each write is bounded by
// writeTimeout.
func (p *Drill) writeSite(ctx context.Context, site string, n int, interval time.Duration, stop time.Time, seq0 int) ([]Attempt, WriteStats) {
	st := WriteStats{Site: site}
	gen, err := keys.NewGenerator(site)
	if err != nil {
		st.FirstError = err.Error()
		return nil, st
	}
	store := p.Stores[site]
	out := make([]Attempt, 0, n)
	start := p.now()
	st.First = start
	// Every site writes until it wrote n rows or the window closes, whichever
	// comes first: a slow site writes fewer rows, it never stretches the fault.
	for i := 0; i < n && ctx.Err() == nil && p.now().Before(stop); i++ {
		if wait := start.Add(time.Duration(i) * interval).Sub(p.now()); wait > 0 {
			p.sleep(wait)
			if ctx.Err() != nil || !p.now().Before(stop) {
				break
			}
		}
		k, err := gen.New()
		if err != nil {
			st.FirstError = err.Error()
			break
		}
		row := Row{ID: k.ID, Site: site, Run: p.RunID, Seq: seq0 + i}
		a := Attempt{Row: row, At: site}
		st.Attempted++
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err = store.Insert(wctx, row)
		cancel()
		switch outcome := classifyWrite(err, ctx.Err()); outcome {
		case writeCutOff:
			a.Err = err.Error()
			st.CutOff++
		case writeFailed:
			a.Err = err.Error()
			st.Failed++
			if st.FirstError == "" {
				st.FirstError = err.Error()
			}
		default:
			a.Acked = true
			st.Acked++
		}
		out = append(out, a)
	}
	st.Last = p.now()
	return out, st
}

// writeObservations says, per site, whether writes behaved as expected during the
// faults: sites in DownSites refuse them, every other site keeps accepting them.
func (p *Drill) writeObservations(stats []WriteStats) []Observation {
	down := p.downSites()
	var out []Observation
	for _, st := range stats {
		detail := fmt.Sprintf("%d of %d write(s) acknowledged", st.Acked, st.Attempted)
		if st.CutOff > 0 {
			detail += fmt.Sprintf(" (%d in flight when the fault window closed)", st.CutOff)
		}
		if st.FirstError != "" {
			detail += "; first error: " + st.FirstError
		}
		if down[st.Site] {
			out = append(out, Observation{What: st.Site + " refuses writes while its database is down",
				OK: st.Failed > 0, Detail: detail, Required: true})
			continue
		}
		out = append(out, Observation{What: st.Site + " keeps accepting its own writes",
			OK: st.Acked > 0 && st.Failed == 0, Detail: detail, Required: true})
	}
	return out
}

// writeBefore writes PreWrites rows at every site, unpaced, before the faults.
func (p *Drill) writeBefore(ctx context.Context, ev func(kind, target, detail string) time.Time) []Attempt {
	end := p.Progress.Step("write %d row(s) at each site before the fault", p.PreWrites)
	var mu sync.Mutex
	var all []Attempt
	var wg sync.WaitGroup
	for _, site := range p.storeSites() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.catch()
			a, _ := p.writeSite(ctx, site, p.PreWrites, 0, p.now().Add(time.Hour), -p.PreWrites)
			mu.Lock()
			all = append(all, a...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	p.rethrow()
	acked := 0
	for _, a := range all {
		if a.Acked {
			acked++
		}
	}
	end(nil)
	ev(EvWritesEnd, "", fmt.Sprintf("before the fault: %d of %d acknowledged", acked, len(all)))
	return all
}

// Write outcomes.
const (
	writeAcked  = "acked"
	writeFailed = "failed"  // the site refused it or did not answer in time
	writeCutOff = "cut-off" // the drill stopped waiting: its window closed, or it was interrupted
)

// classifyWrite says what one write's error means, given the error of the drill's
// context (the fault window's) when the write returned. A write in flight when that
// context ended (the window closed, SIGINT, SIGTERM, --timeout) proves nothing about
// the site: it is cut off, not failed, even when the error it got is another one
// (pgx reports a cancelled query as a closed connection). A write that ran out of
// its own writeTimeout while the window was open is the site not answering: failed.
func classifyWrite(err, ctxErr error) string {
	switch {
	case err == nil:
		return writeAcked
	case ctxErr != nil:
		return writeCutOff
	}
	return writeFailed
}
