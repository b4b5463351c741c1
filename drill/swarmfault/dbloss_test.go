package swarmfault

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// volumes records the volumes deleted on one node.
type volumes struct {
	mu      sync.Mutex
	removed []string
}

func (v *volumes) VolumeRemove(_ context.Context, id string, _ client.VolumeRemoveOptions) (client.VolumeRemoveResult, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.removed = append(v.removed, id)
	return client.VolumeRemoveResult{}, nil
}

// TestDBLossDataDestroyed: a loss that ran to its end deleted the volume on the
// node that ran the database and says so; one stopped while the container was
// still stopping (Ctrl-C) deleted nothing and says so, so the drill's recovery
// does not rebuild a database that kept its data.
func TestDBLossDataDestroyed(t *testing.T) {
	for _, c := range []struct {
		name      string
		stopAfter int
		wait      time.Duration
		destroyed bool
	}{
		{"ran to its end", 1, 10 * time.Second, true},
		{"stopped while the container stops", 1 << 30, 600 * time.Millisecond, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSwarm(c.stopAfter, task("t1", "n-ready", swarm.TaskStateRunning))
			v := &volumes{}
			var on string
			l := &DBLoss{Site: "douala", Service: "postgres_db", Volume: "postgres_pgdata", Engine: s,
				NodeEngine: func(_ context.Context, host string) (VolumeEngine, error) { on = host; return v, nil }}
			ctx, cancel := context.WithTimeout(context.Background(), c.wait)
			defer cancel()
			err := l.Lose(ctx, "douala")
			if (err == nil) != c.destroyed || l.DataDestroyed() != c.destroyed {
				t.Fatalf("Lose: %v, DataDestroyed %v; want destroyed %v", err, l.DataDestroyed(), c.destroyed)
			}
			v.mu.Lock()
			defer v.mu.Unlock()
			if c.destroyed && (len(v.removed) != 1 || v.removed[0] != "postgres_pgdata" || on != "db1") {
				t.Errorf("volumes removed %v on %q; want postgres_pgdata on db1", v.removed, on)
			}
			if !c.destroyed && len(v.removed) != 0 {
				t.Errorf("a loss stopped before the container stopped removed %v", v.removed)
			}
		})
	}
}
