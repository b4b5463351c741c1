package live

import (
	"context"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/drill/swarmfault"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// DBVolume is the postgres stack's data volume (stack postgres, volume pgdata).
const DBVolume = "postgres_pgdata"

// SiteLoser returns the site-loss drill's Loser for a site's swarm: its database
// service stopped and its volume deleted on the node that ran it, then started
// empty. close releases the engines it opened.
func SiteLoser(ctx context.Context, topo *sites.Topology, site string) (l *swarmfault.DBLoss, closeAll func(), err error) {
	s := topo.Site(site)
	if s == nil {
		return nil, nil, fmt.Errorf("site-loss drill: --site %q is not a site (sites: %v)", site, topo.SiteNames())
	}
	mgr, err := engine.ForSite(ctx, s)
	if err != nil {
		return nil, nil, fmt.Errorf("site-loss drill: %s's engine: %w", site, err)
	}
	var opened []interface{ Close() error }
	opened = append(opened, mgr)
	closeAll = func() {
		for _, c := range opened {
			_ = c.Close()
		}
	}
	l = &swarmfault.DBLoss{Site: site, Service: DefaultDBService, Volume: DBVolume, Engine: mgr,
		NodeEngine: func(ctx context.Context, host string) (swarmfault.VolumeEngine, error) {
			n := s.NodeByName(host)
			if n == nil || n.Engine == "" {
				// The node reached through the site engine (or a one-node site).
				return mgr, nil
			}
			e, err := engine.ForNode(ctx, s, n)
			if err != nil {
				return nil, err
			}
			opened = append(opened, e)
			return e, nil
		},
		Ready: func(ctx context.Context) error { return waitDatabase(ctx, s, 3*time.Minute) },
	}
	return l, closeAll, nil
}

// waitDatabase waits until the site's database answers.
func waitDatabase(ctx context.Context, s *sites.Site, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		pool, err := postgres.Connect(ctx, s)
		if err == nil {
			pool.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's new database did not answer within %s: %w", s.Name, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
