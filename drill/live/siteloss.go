package live

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/drill/swarmfault"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	mongostack "github.com/sitectl/sitectl/stacks/mongo"
)

// DBVolume is the postgres stack's data volume (stack postgres, volume pgdata).
const DBVolume = "postgres_pgdata"

// SiteLoser returns the site-loss drill's Loser for a site's swarm: its database
// service stopped and its volume deleted on the node that ran it, then started
// empty. close releases the engines it opened.
func SiteLoser(ctx context.Context, topo *sites.Topology, site string) (l *swarmfault.DBLoss, closeAll func(), err error) {
	s, e, err := siteEngines(ctx, topo, site)
	if err != nil {
		return nil, nil, err
	}
	l = e.loss(DefaultDBService, DBVolume)
	l.Ready = func(ctx context.Context) error { return waitDatabase(ctx, s, 3*time.Minute) }
	return l, e.close, nil
}

// MongoLoser returns the site-loss drill's Loser for the site's MongoDB members:
// each mongod service stopped and its volume deleted on the node that ran it, then
// started empty (the rebuild's initial-sync step waits for them to answer).
func MongoLoser(ctx context.Context, topo *sites.Topology, site string) (l Losses, closeAll func(), err error) {
	s, e, err := siteEngines(ctx, topo, site)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range mongostack.MemberServices(s) {
		l = append(l, e.loss(m.Service, m.Volume))
	}
	return l, e.close, nil
}

// Losses loses and replaces several services of one site, in order.
type Losses []*swarmfault.DBLoss

// Lose loses every service.
func (ls Losses) Lose(ctx context.Context, site string) error {
	for _, l := range ls {
		if err := l.Lose(ctx, site); err != nil {
			return err
		}
	}
	return nil
}

// Replace starts every service again, empty.
func (ls Losses) Replace(ctx context.Context, site string) error {
	for _, l := range ls {
		if err := l.Replace(ctx, site); err != nil {
			return err
		}
	}
	return nil
}

// engines opens a site's swarm manager and, on demand, its nodes' engines.
type engines struct {
	site   *sites.Site
	mgr    *client.Client
	opened []interface{ Close() error }
}

func siteEngines(ctx context.Context, topo *sites.Topology, site string) (*sites.Site, *engines, error) {
	s := topo.Site(site)
	if s == nil {
		return nil, nil, fmt.Errorf("site-loss drill: --site %q is not a site (sites: %v)", site, topo.SiteNames())
	}
	mgr, err := engine.ForSite(ctx, s)
	if err != nil {
		return nil, nil, fmt.Errorf("site-loss drill: %s's engine: %w", site, err)
	}
	return s, &engines{site: s, mgr: mgr, opened: []interface{ Close() error }{mgr}}, nil
}

func (e *engines) close() {
	for _, c := range e.opened {
		_ = c.Close()
	}
}

// loss is the DBLoss of one service and its volume.
func (e *engines) loss(service, volume string) *swarmfault.DBLoss {
	mgr := e.mgr
	return &swarmfault.DBLoss{Site: e.site.Name, Service: service, Volume: volume, Engine: mgr,
		NodeEngine: func(ctx context.Context, host string) (swarmfault.VolumeEngine, error) {
			n := e.site.NodeByName(host)
			if n == nil || n.Engine == "" {
				// The node reached through the site engine (or a one-node site).
				return mgr, nil
			}
			ne, err := engine.ForNode(ctx, e.site, n)
			if err != nil {
				return nil, err
			}
			e.opened = append(e.opened, ne)
			return ne, nil
		},
	}
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
