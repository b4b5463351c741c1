// Package deploy composes each site's plan from its parts (swarm membership, the
// site networks and stacks, then the parts other packages register in Parts), prints
// it for `sitectl plan`, applies the same steps for `sitectl deploy` (sites in
// parallel, one deploy lock per site held in its swarm), watches the services
// converge, and reports each site's status.
package deploy

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/engine"
	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
)

// Engine is what the deploy path asks of a site's manager engine; *client.Client
// has it.
type Engine interface {
	Info(ctx context.Context, o client.InfoOptions) (client.SystemInfoResult, error)
	SwarmInspect(ctx context.Context, o client.SwarmInspectOptions) (client.SwarmInspectResult, error)
	NodeList(ctx context.Context, o client.NodeListOptions) (client.NodeListResult, error)
	NetworkList(ctx context.Context, o client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkCreate(ctx context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error)
	NetworkRemove(ctx context.Context, id string, o client.NetworkRemoveOptions) (client.NetworkRemoveResult, error)
	SecretList(ctx context.Context, o client.SecretListOptions) (client.SecretListResult, error)
	SecretCreate(ctx context.Context, o client.SecretCreateOptions) (client.SecretCreateResult, error)
	SecretRemove(ctx context.Context, id string, o client.SecretRemoveOptions) (client.SecretRemoveResult, error)
	ConfigList(ctx context.Context, o client.ConfigListOptions) (client.ConfigListResult, error)
	ConfigCreate(ctx context.Context, o client.ConfigCreateOptions) (client.ConfigCreateResult, error)
	ConfigInspect(ctx context.Context, id string, o client.ConfigInspectOptions) (client.ConfigInspectResult, error)
	ConfigUpdate(ctx context.Context, id string, o client.ConfigUpdateOptions) (client.ConfigUpdateResult, error)
	ConfigRemove(ctx context.Context, id string, o client.ConfigRemoveOptions) (client.ConfigRemoveResult, error)
	ServiceList(ctx context.Context, o client.ServiceListOptions) (client.ServiceListResult, error)
	ServiceInspect(ctx context.Context, id string, o client.ServiceInspectOptions) (client.ServiceInspectResult, error)
	ServiceCreate(ctx context.Context, o client.ServiceCreateOptions) (client.ServiceCreateResult, error)
	ServiceUpdate(ctx context.Context, id string, o client.ServiceUpdateOptions) (client.ServiceUpdateResult, error)
	ServiceRemove(ctx context.Context, id string, o client.ServiceRemoveOptions) (client.ServiceRemoveResult, error)
	TaskList(ctx context.Context, o client.TaskListOptions) (client.TaskListResult, error)
}

// Options tune plan and deploy.
type Options struct {
	// Prune removes sitectl's objects (services, networks, secrets, configs) the
	// configuration no longer wants. Old versions of wanted secrets and configs are
	// always removed once unused.
	Prune bool
	// ForceUnlock takes the site's deploy lock even if another deploy holds it.
	ForceUnlock bool
	// Environ interpolates ${VAR} in compose files (os.Environ() when nil).
	Environ []string
	// Progress receives per-step and per-service lines (nil: silent).
	Progress *progress.Printer
	// Open opens a site's manager engine (engine.ForSite when nil).
	Open func(ctx context.Context, s *sites.Site) (Engine, func(), error)
	// Poll is the convergence poll interval (default 500ms).
	Poll time.Duration
	// Stacks, when set, limits the stacks part to these stacks (or apps) and the
	// site networks: nothing of another stack is planned, changed or pruned
	// (`sitectl deploy --app`).
	Stacks []string
	// Replication tunes the PostgreSQL replication part Parts builds: `sitectl
	// deploy` sets PeerWait and Starting, so a site's plan waits for the other
	// sites' databases still starting in the same deploy; `sitectl plan` leaves it
	// zero and reports an unreachable site at once.
	Replication postgres.Options
}

func (o Options) environment() map[string]string {
	env := o.Environ
	if env == nil {
		env = os.Environ()
	}
	return sites.EnvMap(env)
}

func (o Options) open(ctx context.Context, s *sites.Site) (Engine, func(), error) {
	if o.Open != nil {
		return o.Open(ctx, s)
	}
	c, err := engine.ForSite(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { _ = c.Close() }, nil
}

// session is one site's run: its engine, the options, and what was changed, so the
// convergence watch knows which services rolled.
type session struct {
	topo *sites.Topology
	site *sites.Site
	eng  Engine
	opts Options

	mu      sync.Mutex
	touched map[string]touch // service name → what this run did to it

	waitOnce sync.Once
	waitErr  error

	// keep, when set, limits the stacks this session plans, prunes and waits for
	// (the stacks part: the built-in stacks; an app's group: that app).
	keep func(stack string) bool
	// built is the site's rendered and converted stacks, shared by the sessions of
	// one run of the site (the stacks part and each app's group).
	built *buildCache
	// snap is the site's swarm as the run last read it, shared like built.
	snap *snapshot
}

// touch records what this run did to a service.
type touch struct {
	created  bool
	rolls    bool // the task template changed: swarm rolls the tasks
	previous string
	// applied is the spec hash sitectl applied: a live spec with another hash
	// means swarm rolled the update back (or someone changed the service meanwhile).
	applied string
	// since is when the manager recorded sitectl's create or update: failed tasks
	// from before it (an earlier deploy's) say nothing about this one.
	since time.Time
}

func newSession(topo *sites.Topology, site *sites.Site, eng Engine, opts Options) *session {
	return &session{topo: topo, site: site, eng: eng, opts: opts, touched: map[string]touch{}, built: &buildCache{}, snap: &snapshot{}}
}

// child is a session of the same run of the site for the stacks keep selects: its
// own record of what it changed and its own convergence wait, the same engine and
// built stacks and swarm snapshot.
func (s *session) child(keep func(string) bool) *session {
	c := newSession(s.topo, s.site, s.eng, s.opts)
	c.keep, c.built, c.snap = keep, s.built, s.snap
	return c
}

func (s *session) touch(name string, t touch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.touched[name] = t
}

func (s *session) touchedServices() map[string]touch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]touch, len(s.touched))
	for k, v := range s.touched {
		out[k] = v
	}
	return out
}

// sessionPart is a part of this package: it plans and waits with the run's session
// of the site (its engine, the run's options, what the run changed), which Plan and
// Deploy hand it. Called on its own, as a plan.Part, it opens a session of its own.
type sessionPart interface {
	planSession(ctx context.Context, s *session) ([]plan.Step, error)
	waitSession(ctx context.Context, s *session) error
}

// planPart plans part for the run's session of the site.
func planPart(ctx context.Context, s *session, part plan.Part) ([]plan.Step, error) {
	if sp, ok := part.(sessionPart); ok {
		return sp.planSession(ctx, s)
	}
	return part.Plan(ctx, s.topo, s.site)
}

// waitPart waits for a Waiter part within the run's session of the site.
func waitPart(ctx context.Context, s *session, w Waiter) error {
	if sp, ok := w.(sessionPart); ok {
		return sp.waitSession(ctx, s)
	}
	return w.Wait(ctx, s.topo, s.site)
}

// withOwnSession runs fn with a session of its own for site (a part of this package
// called outside Plan and Deploy), closing its engine after.
func withOwnSession(ctx context.Context, topo *sites.Topology, site *sites.Site, fn func(*session) error) error {
	var o Options
	eng, closeEng, err := o.open(ctx, site)
	if err != nil {
		return err
	}
	defer closeEng()
	return fn(newSession(topo, site, eng, o))
}

// swarmState says whether the site engine is an active swarm manager, and the
// swarm's cluster ID (the key of secret and config version names).
func (s *session) swarmState(ctx context.Context) (active bool, clusterID string, err error) {
	info, err := s.eng.Info(ctx, client.InfoOptions{})
	if err != nil {
		return false, "", fmt.Errorf("engine info: %w", err)
	}
	sw := info.Info.Swarm
	switch {
	case sw.LocalNodeState != "active":
		return false, "", nil
	case !sw.ControlAvailable:
		return false, "", fmt.Errorf("engine %s is a swarm worker, not a manager: point engine.host of %s at a manager node", engine.SiteEndpoint(s.site), s.site.Name)
	}
	si, err := s.eng.SwarmInspect(ctx, client.SwarmInspectOptions{})
	if err != nil {
		return false, "", fmt.Errorf("swarm inspect: %w", err)
	}
	return true, si.Swarm.ID, nil
}
