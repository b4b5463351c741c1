package swarmfault

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"
)

// VolumeEngine is the part of a node's Docker API DBLoss uses to delete the
// database's volume; *client.Client has it.
type VolumeEngine interface {
	VolumeRemove(ctx context.Context, volumeID string, options client.VolumeRemoveOptions) (client.VolumeRemoveResult, error)
}

// DBLoss destroys a site's database the way a lost site loses it: the database
// service stopped (scaled to zero) and its data volume deleted on the node that ran
// it; Replace starts the service again on an empty volume (the same configuration:
// the image's entrypoint makes the role and database again). It is the site-loss
// drill's Loser on a swarm.
type DBLoss struct {
	Site    string
	Service string // postgres_db
	Volume  string // postgres_pgdata
	Engine  Engine
	// NodeEngine opens the Docker API of a swarm node by its hostname.
	NodeEngine func(ctx context.Context, hostname string) (VolumeEngine, error)
	// Ready waits until the site's database answers again.
	Ready func(ctx context.Context) error

	down    *ServiceDown
	deleted bool // the volume was deleted
}

// DataDestroyed reports whether Lose deleted the volume: a Lose stopped part-way
// (Ctrl-C while the service stopped) leaves the data, and Replace then starts the
// database with it.
func (f *DBLoss) DataDestroyed() bool { return f.deleted }

// Lose scales the service to zero and deletes its volume on the node that ran it.
func (f *DBLoss) Lose(ctx context.Context, site string) error {
	if site != f.Site {
		return fmt.Errorf("site-loss: this loser destroys %s, not %s", f.Site, site)
	}
	running, err := runningTasks(ctx, f.Engine, f.Service, false)
	if err != nil {
		return fmt.Errorf("%s: tasks of %s: %w", f.Site, f.Service, err)
	}
	if len(running) != 1 {
		return fmt.Errorf("%s: %s runs %d tasks; a site-loss drill needs exactly one (its volume is on that node)", f.Site, f.Service, len(running))
	}
	node, err := f.Engine.NodeInspect(ctx, running[0].NodeID, client.NodeInspectOptions{})
	if err != nil {
		return fmt.Errorf("%s: inspect the node of %s: %w", f.Site, f.Service, err)
	}
	host := node.Node.Description.Hostname
	ve, err := f.NodeEngine(ctx, host)
	if err != nil {
		return fmt.Errorf("%s: engine of node %s (it holds volume %s): %w", f.Site, host, f.Volume, err)
	}
	f.down = &ServiceDown{Site: f.Site, Service: f.Service, Engine: f.Engine}
	if err := f.down.Inject(ctx); err != nil {
		return err
	}
	// The stopped task's container still references the volume for a moment.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := ve.VolumeRemove(ctx, f.Volume, client.VolumeRemoveOptions{Force: true})
		if err == nil {
			f.deleted = true
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: delete volume %s on %s: %w", f.Site, f.Volume, host, err)
		}
		time.Sleep(time.Second)
	}
}

// Replace scales the service back (on an empty volume) and waits for the database.
func (f *DBLoss) Replace(ctx context.Context, site string) error {
	if f.down == nil {
		return fmt.Errorf("site-loss: %s was not lost by this drill", site)
	}
	if err := f.down.Remove(ctx); err != nil {
		return err
	}
	if f.Ready == nil {
		return nil
	}
	return f.Ready(ctx)
}

// Restore puts the service back if Lose stopped it and Replace did not run (a
// drill that failed or was interrupted in between): the site then runs an empty
// database, for `sitectl site rebuild` to rebuild.
func (f *DBLoss) Restore(ctx context.Context) error {
	if f.down == nil {
		return nil
	}
	return f.down.Remove(ctx)
}
