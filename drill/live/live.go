// Package live wires the drills to the real sites: links are cut and healed over
// vici (package tunnels, the same path on real gateways and in the lab), databases
// are reached and replication is resynced with replication/postgres, and swarm faults
// go through each site manager's Docker API (package engine).
package live

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/drill/mongodrill"
	"github.com/sitectl/sitectl/drill/pgdrill"
	"github.com/sitectl/sitectl/drill/swarmfault"
	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/tunnels"
)

// Tunnels cuts and heals links through the gateways' vici sockets.
type Tunnels struct{ Topo *sites.Topology }

// Cut takes the link down at both ends (tunnels.Cut).
func (t Tunnels) Cut(ctx context.Context, l sites.Link) error {
	return tunnels.Cut(ctx, t.Topo, l.Name())
}

// Heal brings the link back and waits for its CHILD_SA (tunnels.Heal).
func (t Tunnels) Heal(ctx context.Context, l sites.Link) error {
	return tunnels.Heal(ctx, t.Topo, l.Name())
}

// LinkUp reports whether both ends have the link's SAs installed.
func (t Tunnels) LinkUp(ctx context.Context, l sites.Link) (bool, error) {
	st, err := tunnels.Status(ctx, t.Topo, l.A, l.B)
	if err != nil {
		return false, err
	}
	for _, s := range st {
		if s.Link == l.Name() {
			return s.State == tunnels.StateUp, nil
		}
	}
	return false, fmt.Errorf("tunnels status has no link %s", l.Name())
}

// Resync resumes replication after a heal with sitectl's replication package: it
// enables the sitectl subscriptions a lost connection disabled (PostgreSQL 15 treats
// a lost connection like an apply error under disable_on_error) and leaves alone any
// a real conflict holds — the verdict then reports that subscription.
type Resync struct {
	Topo *sites.Topology
	Sess *postgres.Session
}

// Resync enables what can be enabled and says what it did.
func (r Resync) Resync(ctx context.Context) (string, error) {
	res, err := postgres.Resume(ctx, r.Topo, r.Sess)
	if err != nil {
		return "", fmt.Errorf("resume replication: %w", err)
	}
	msg := fmt.Sprintf("enabled %d subscription(s)", len(res.Enabled))
	if len(res.Enabled) > 0 {
		msg += " " + strings.Join(res.Enabled, ", ")
	}
	for _, c := range res.Held {
		msg += "; held by a conflict: " + c.Summary()
	}
	return msg, nil
}

// Options choose the drill and how it runs.
type Options struct {
	Kind    string // partition, cloud-loss, db-down, node-loss
	Site    string
	Node    string
	Service string // db-down: the database service (default postgres_db)
	// Mongo adds the MongoDB part to partition and cloud-loss: majority writes from
	// every site's member, which side could write, nothing acknowledged lost.
	Mongo    bool
	Settings drill.Settings
	Progress *progress.Printer
}

// Kinds are the drills Build knows.
var Kinds = []string{"partition", "cloud-loss", "db-down", "node-loss", "api-kill"}

// APIService is the django-api stack's API service, the one api-kill kills a task of.
const APIService = "django-api_api"

// DefaultDBService is the PostgreSQL service of the postgres stack.
const DefaultDBService = "postgres_db"

// Build assembles a drill against the live sites. close releases its connections.
func Build(ctx context.Context, topo *sites.Topology, o Options) (d *drill.Drill, closeAll func(), err error) {
	b := &builder{ctx: ctx, topo: topo, o: o, sess: postgres.NewSession(topo), opened: map[string]*client.Client{}}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	stores := map[string]drill.Store{}
	for _, s := range topo.Sites {
		if s.HasStack("postgres") {
			stores[s.Name] = pgdrill.LazyStore{Site: s.Name, Get: b.sess.Pool}
		}
	}
	b.tun = Tunnels{Topo: topo}
	d = &drill.Drill{Kind: o.Kind, Topo: topo, Site: o.Site, Stores: stores, Checker: b.tun,
		Observer: pgdrill.LiveObserver(topo, b.sess.Pool),
		Resyncer: Resync{Topo: topo, Sess: b.sess}, Settings: o.Settings, Progress: o.Progress}
	if err := b.faults(d); err != nil {
		return nil, nil, err
	}
	if len(d.Links) > 0 {
		d.Alerting = Alerting(ctx, topo, d.Links)
	}
	// The faults are recorded, before they are injected, in the swarm of every
	// site they touch (swarmfault.Journal): a drill killed before it healed then
	// leaves a record the next command reports and `sitectl drill heal` acts on.
	j := &swarmfault.Journal{Engines: map[string]swarmfault.ConfigEngine{}}
	for _, name := range recordSites(d) {
		e, err := b.engine(name)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (the drill records its faults in the swarm of every site they touch before injecting them)", err)
		}
		j.Engines[name] = e
	}
	d.Journal = j
	if o.Mongo && len(d.Links) > 0 {
		for _, s := range topo.Sites {
			if !s.HasStack("mongo") || len(s.Mongo.Members) == 0 {
				continue
			}
			side, err := openMongo(s)
			if err != nil {
				return nil, nil, err
			}
			b.mongo = append(b.mongo, side)
			d.Mongo = append(d.Mongo, side)
		}
	}
	return d, b.close, nil
}

// builder holds what Build opens: the PostgreSQL session, the sites' engines (one
// each, opened on first use) and the MongoDB sides.
type builder struct {
	ctx     context.Context
	topo    *sites.Topology
	o       Options
	tun     Tunnels
	sess    *postgres.Session
	engines []*client.Client
	opened  map[string]*client.Client
	mongo   []*mongodrill.Side
}

func (b *builder) close() {
	b.sess.Close()
	for _, e := range b.engines {
		_ = e.Close()
	}
	for _, m := range b.mongo {
		_ = m.Close()
	}
}

// engine returns the site's engine client.
func (b *builder) engine(name string) (*client.Client, error) {
	if e := b.opened[name]; e != nil {
		return e, nil
	}
	e, err := engine.ForSite(b.ctx, b.topo.Site(name))
	if err != nil {
		return nil, fmt.Errorf("%s drill: %s's engine: %w", b.o.Kind, name, err)
	}
	b.engines = append(b.engines, e)
	b.opened[name] = e
	return e, nil
}

// site returns the site the drill is about (--site), required.
func (b *builder) site() (*sites.Site, error) {
	if b.o.Site == "" {
		return nil, fmt.Errorf("%s drill: --site is required (sites: %v)", b.o.Kind, b.topo.SiteNames())
	}
	s, err := b.topo.Select(b.o.Site)
	if err != nil {
		return nil, err
	}
	return s[0], nil
}

// faults sets the drill's links, faults, probes and expectations for its kind.
func (b *builder) faults(d *drill.Drill) error {
	topo, o := b.topo, b.o
	switch o.Kind {
	case "partition":
		s, err := b.site()
		if err != nil {
			return err
		}
		d.Links = topo.LinksOf(s.Name)
		if len(d.Links) == 0 {
			return fmt.Errorf("partition drill: %s has no tunnel link to cut (tunnel.peers)", s.Name)
		}
		d.Faults = drill.LinkFaults(b.tun, d.Links)
	case "cloud-loss":
		d.Site = ""
		d.Links = topo.LinksOf(topo.Hub)
		if len(d.Links) == 0 {
			return fmt.Errorf("cloud-loss drill: the hub %s has no tunnel link", topo.Hub)
		}
		d.Faults = drill.LinkFaults(b.tun, d.Links)
		for _, s := range topo.Spokes() {
			e, err := b.engine(s.Name)
			if err != nil {
				return err
			}
			d.Probes = append(d.Probes, &swarmfault.Services{Site: s.Name, Engine: e, Required: true})
		}
	case "db-down":
		s, err := b.site()
		if err != nil {
			return err
		}
		e, err := b.engine(s.Name)
		if err != nil {
			return err
		}
		svc := o.Service
		if svc == "" {
			svc = DefaultDBService
		}
		d.Faults = []drill.Fault{&swarmfault.ServiceDown{Site: s.Name, Service: svc, Engine: e}}
		d.PreWrites = max(o.Settings.Writes/10, 1)
		d.DownSites = []string{s.Name}
		d.Probes = []drill.Probe{&swarmfault.Services{Site: s.Name, Engine: e, Except: svc}}
	case "node-loss":
		return b.nodeLoss(d)
	case "api-kill":
		return b.apiKill(d)
	default:
		return fmt.Errorf("unknown drill %q (drills: %v)", o.Kind, Kinds)
	}
	return nil
}

// nodeLoss sets up a node-loss drill: the node drained, its site's services probed.
func (b *builder) nodeLoss(d *drill.Drill) error {
	o := b.o
	s, err := b.site()
	if err != nil {
		return err
	}
	if o.Node == "" || s.NodeByName(o.Node) == nil {
		return fmt.Errorf("node-loss drill: --node must name one of %s's nodes (%v)", s.Name, nodeNames(s))
	}
	e, err := b.engine(s.Name)
	if err != nil {
		return err
	}
	d.Node = o.Node
	d.Faults = []drill.Fault{&swarmfault.NodeDrain{Site: s.Name, Node: o.Node, Engine: e}}
	d.PreWrites = max(o.Settings.Writes/10, 1)
	d.Probes = []drill.Probe{&swarmfault.Services{Site: s.Name, Engine: e, Avoid: o.Node, Settle: max(o.Settings.Duration, 30*time.Second)}}
	// A database pinned to the drained node cannot move: writes there are expected
	// to fail until the node is back.
	if on, err := swarmfault.RunsOn(b.ctx, e, DefaultDBService, o.Node); err == nil && on {
		d.DownSites = []string{s.Name}
	}
	return nil
}

// apiKill sets up an api-kill drill: one running task of the site's API killed on
// its node, swarm replacing it; the site's other services probed.
func (b *builder) apiKill(d *drill.Drill) error {
	s, err := b.site()
	if err != nil {
		return err
	}
	if !b.topo.Runs(s.Name, "django-api") {
		return fmt.Errorf("api-kill drill: %s does not run the django-api stack (stacks in %s.yaml) nor an app django-api; choose a site that does", s.Name, s.Name)
	}
	e, err := b.engine(s.Name)
	if err != nil {
		return err
	}
	d.Faults = []drill.Fault{&swarmfault.TaskKill{Site: s.Name, Service: APIService, Engine: e,
		NodeEngine: func(ctx context.Context, host string) (swarmfault.KillEngine, error) {
			n := s.NodeByName(host)
			if n == nil || n.Engine == "" {
				return e, nil // the node reached through the site's engine
			}
			ne, err := engine.ForNode(ctx, s, n)
			if err != nil {
				return nil, err
			}
			b.engines = append(b.engines, ne)
			return ne, nil
		}}}
	d.Probes = []drill.Probe{&swarmfault.Services{Site: s.Name, Engine: e, Except: APIService}}
	return nil
}

// openMongo connects to the site's first replica set member, with the site's
// Reach (from the site's namespace in the lab) and the configured credentials.
func openMongo(s *sites.Site) (*mongodrill.Side, error) {
	var dialer mongodrill.Dialer
	if d := s.Reach.Dial; d != nil {
		dialer = d
	}
	var cred *options.Credential
	if s.Mongo.User != "" {
		pw, err := s.Mongo.Password.Resolve()
		if err != nil {
			return nil, fmt.Errorf("%s: mongodb password: %w", s.Name, err)
		}
		cred = &options.Credential{Username: s.Mongo.User, Password: string(pw), AuthSource: "admin"}
	}
	return mongodrill.Open(s.Name, s.Mongo.Members[0].Host, dialer, cred)
}

func nodeNames(s *sites.Site) []string {
	var out []string
	for _, n := range s.Nodes {
		out = append(out, n.Name)
	}
	return slices.Clip(out)
}

// recordSites are the sites whose swarm holds the drill's record: both ends of every
// link it cuts, and the site of a swarm fault.
func recordSites(d *drill.Drill) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, l := range d.Links {
		add(l.A)
		add(l.B)
	}
	if d.Kind == "db-down" || d.Kind == "node-loss" || d.Kind == "api-kill" {
		add(d.Site)
	}
	slices.Sort(out)
	return out
}

// TouchedSites are the sites whose swarm a drill of kind about site records its
// faults in (and where a record left by another drill would show): the ends of the
// links it cuts, or the site of its swarm fault. Unknown kinds and sites give every
// site (Build then says what is wrong).
func TouchedSites(topo *sites.Topology, kind, site string) []string {
	d := &drill.Drill{Kind: kind, Site: site}
	switch kind {
	case "partition":
		d.Links = topo.LinksOf(site)
	case "cloud-loss":
		d.Links = topo.LinksOf(topo.Hub)
	}
	out := recordSites(d)
	if len(out) == 0 || (site != "" && topo.Site(site) == nil) {
		return topo.SiteNames()
	}
	return out
}
