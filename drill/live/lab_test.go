package live

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/replication/postgres"
)

func (d *drLab) build(t *testing.T, kind, site string, s drill.Settings) (*drill.Drill, func()) {
	t.Helper()
	dr, closeAll, err := Build(context.Background(), d.topo, Options{Kind: kind, Site: site, Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	return dr, closeAll
}

// subscriberPoll counts, straight at the subscribers, when the rows written during
// the cut have all arrived: PostgreSQL's own catch-up time, without the drill.
type subscriberPoll struct {
	mu   sync.Mutex
	done time.Time
}

func (p *subscriberPoll) start(_ *testing.T, d *drLab, run string, want map[string]int) {
	sess := postgres.NewSession(d.topo)
	go func() {
		defer sess.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for ctx.Err() == nil {
			ok := true
			for site, n := range want {
				pool, err := sess.Pool(ctx, site)
				var got int
				if err == nil {
					err = pool.QueryRow(ctx, `SELECT count(*) FROM `+drill.Table+` WHERE run = $1`, run).Scan(&got)
				}
				ok = ok && err == nil && got >= n
			}
			if ok {
				p.mu.Lock()
				p.done = time.Now()
				p.mu.Unlock()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// TestLabDrills runs, on one lab with fresh clusters: five partition drills of douala
// in a row, a drill interrupted with SIGINT in the middle of its cut, cloud-loss and
// node-loss.
func TestLabDrills(t *testing.T) {
	bin := buildSitectl(t) // compiles while the lab comes up
	d := startDRLab(t)
	t.Run("partition x5", func(t *testing.T) { partitionsInARow(t, d) })
	t.Run("SIGINT mid-cut", func(t *testing.T) { sigintMidCut(t, d, bin()) })
	t.Run("row deleted behind the drill's back", func(t *testing.T) { brokenCase(t, d) })
	t.Run("cloud-loss", func(t *testing.T) { cloudLoss(t, d) })
	t.Run("node-loss", func(t *testing.T) { nodeLoss(t, d) })
}

func partitionsInARow(t *testing.T, d *drLab) {
	const writes = 1000
	for i := 1; i <= 5; i++ {
		dr, closeAll := d.build(t, "partition", "douala", drill.Settings{Duration: 3 * time.Second, Writes: writes,
			Converge: 60 * time.Second, Sample: 100 * time.Millisecond})
		var poll subscriberPoll
		var healAt time.Time
		if i == 1 {
			dr.RunID = fmt.Sprintf("dr-lab-%d", time.Now().UnixNano())
			acked := 3 * writes
			dr.OnEvent = func(e drill.Event) {
				if e.Kind == drill.EvWritesEnd {
					_, _ = fmt.Sscanf(e.Detail, "%d of", &acked)
				}
				if e.Kind == drill.EvHeal && healAt.IsZero() {
					healAt = e.At
					// Every site holds every acknowledged row.
					poll.start(t, d, dr.RunID, map[string]int{"cloud": acked, "douala": acked, "yaounde": acked})
				}
			}
		}
		rep := dr.Run(context.Background())
		closeAll()
		v := rep.Verdict
		// Every write attempted in the 3s window is acknowledged; a loaded site may
		// attempt fewer than --writes (the window does not stretch for it).
		attempted := 0
		for _, w := range rep.Writes {
			attempted += w.Attempted
		}
		if !rep.Passed || v == nil || v.Lost != 0 || v.Duplicated != 0 || v.Collisions != 0 || rep.HealFailed || v.Acked != attempted || attempted == 0 {
			t.Fatalf("drill %d: %s; verdict %+v; heal %+v; observations %+v", i, rep.Summary(), v, rep.Heal, rep.Observations)
		}
		if attempted < 3*writes {
			t.Logf("drill %d: %d of %d writes attempted within the 3s window", i, attempted, 3*writes)
		}
		t.Logf("drill %d: %s; heal→PostgreSQL caught up (slots) %.2fs, heal→verified converged %.2fs",
			i, rep.Summary(), secs(rep.HealToCaughtUp), secs(rep.HealToConverged))
		if i == 1 {
			time.Sleep(100 * time.Millisecond)
			poll.mu.Lock()
			if !poll.done.IsZero() {
				t.Logf("FIGURE: heal→all rows visible polling the subscribers directly %.2fs; heal→verified convergence (drill) %.2fs",
					poll.done.Sub(healAt).Seconds(), secs(rep.HealToConverged))
			}
			poll.mu.Unlock()
		}
	}
}

func secs(s *drill.Seconds) float64 {
	if s == nil {
		return -1
	}
	return float64(*s)
}

func cloudLoss(t *testing.T, d *drLab) {
	dr, closeAll := d.build(t, "cloud-loss", "", drill.Settings{Duration: 4 * time.Second, Writes: 300,
		Converge: 60 * time.Second, Sample: 100 * time.Millisecond})
	defer closeAll()
	rep := dr.Run(context.Background())
	if !rep.Passed || rep.Verdict.Lost != 0 || len(rep.Links) != 2 || len(rep.Sides) != 3 {
		t.Fatalf("cloud-loss: %s; links %v sides %v; observations %+v", rep.Summary(), rep.Links, rep.Sides, rep.Observations)
	}
	// Both spokes kept writing their own rows while cut off from the hub.
	for _, w := range rep.Writes {
		if w.Site != "cloud" && (w.Acked != 300 || w.Failed != 0) {
			t.Fatalf("%s wrote %d/%d during the cloud loss", w.Site, w.Acked, w.Attempted)
		}
	}
	t.Logf("%s; sides %v", rep.Summary(), rep.Sides)
}

// brokenCase deletes, once the drill has seen convergence, the copy of one cloud row
// at yaounde (yaounde publishes only its own rows, so the delete goes nowhere): the
// verdict must show lost = 1 and fail.
func brokenCase(t *testing.T, d *drLab) {
	dr, closeAll := d.build(t, "partition", "douala", drill.Settings{Duration: 2 * time.Second, Writes: 100,
		Converge: 60 * time.Second, Sample: 100 * time.Millisecond})
	defer closeAll()
	sess := postgres.NewSession(d.topo)
	defer sess.Close()
	dr.OnEvent = func(e drill.Event) {
		if e.Kind != drill.EvConverged {
			return
		}
		pool, err := sess.Pool(context.Background(), "yaounde")
		if err == nil {
			var tag interface{ RowsAffected() int64 }
			tag, err = pool.Exec(context.Background(), `DELETE FROM `+drill.Table+
				` WHERE (site, id) IN (SELECT site, id FROM `+drill.Table+` WHERE site = 'cloud' AND run = $1 LIMIT 1)`, dr.RunID)
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("deleted %d rows", tag.RowsAffected())
			}
		}
		if err != nil {
			t.Errorf("delete behind the drill's back: %v", err)
		}
	}
	rep := dr.Run(context.Background())
	if rep.Passed || rep.Verdict == nil || rep.Verdict.Lost != 1 || rep.Verdict.LostSample[0].At != "yaounde" || rep.HealFailed {
		t.Fatalf("want a failed, healed drill with lost = 1 at yaounde: %s %+v", rep.Summary(), rep.Verdict)
	}
	t.Logf("%s (missing at %s: %s)", rep.Summary(), rep.Verdict.LostSample[0].At, rep.Verdict.LostSample[0].ID)
}
