package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sitectl/sitectl/internal/progress"
	"github.com/sitectl/sitectl/lab/images"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/swarm"
	"github.com/sitectl/sitectl/tunnels"
)

// Options say which lab to act on.
type Options struct {
	// ConfigDir is the sites config directory; lab up writes env/lab.yaml there.
	ConfigDir string
	// Sites to build (all when empty).
	Sites []string
	// Prefix names every namespace of the lab (default "sl"); two labs with different
	// prefixes and state dirs can run side by side.
	Prefix string
	// StateDir holds the lab's record, engines' data, sockets, secrets (default
	// /var/lib/sitectl/lab-<prefix>).
	StateDir string
	// ImageCache is where built images are kept between labs (default
	// /var/cache/sitectl/lab-images).
	ImageCache string
	// NoImages skips building and loading the lab images.
	NoImages bool
	Progress *progress.Printer
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir + "-" + o.Prefix
	}
	if o.ConfigDir == "" {
		o.ConfigDir = "sites"
	}
	if o.ImageCache == "" {
		o.ImageCache = DefaultImageCache
	}
	if abs, err := filepath.Abs(o.ConfigDir); err == nil {
		o.ConfigDir = abs
	}
	if abs, err := filepath.Abs(o.StateDir); err == nil {
		o.StateDir = abs
	}
}

// upper carries one lab up.
type upper struct {
	opts   Options
	layout *Layout
	topo   *sites.Topology
	state  *State
	p      *progress.Printer
	// changed is set when this run started, joined or loaded anything.
	changed bool
	// exited reports the end of each daemon this run started.
	exited map[string]chan error
	// goldenDir is the golden engine data root new engines start from.
	goldenDir string
	built     []images.Built
}

func (u *upper) dir() string { return u.opts.StateDir }
func (u *upper) save() error { return u.state.save(u.dir()) }

// Result is what lab up did.
type Result struct {
	// Changed is false when the lab was already up as asked (a second lab up).
	Changed bool   `json:"changed"`
	State   *State `json:"state"`
}

// RequiredTools are the programs lab up runs, with the Debian package of each.
var RequiredTools = map[string]string{
	"ip":             "iproute2",
	"dockerd":        "docker.io",
	"iptables":       "iptables",
	"charon-systemd": "charon-systemd",
	"unshare":        "util-linux",
	"sysctl":         "procps",
}

// Preflight checks what lab up needs from the machine: root, the tools, the TUN device.
func Preflight() error {
	return preflight(os.Geteuid(), exec.LookPath, func(p string) error { _, err := os.Stat(p); return err })
}

// preflight is Preflight with the machine passed in.
func preflight(euid int, lookPath func(string) (string, error), stat func(string) error) error {
	if euid != 0 {
		return errors.New("the lab needs root (network namespaces, dockerd, charon): run `sudo sitectl lab up`")
	}
	var missing []string
	for tool, pkg := range RequiredTools {
		if _, err := lookPath(tool); err != nil {
			missing = append(missing, pkg)
		}
	}
	if err := stat("/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so"); err != nil {
		missing = append(missing, "libcharon-extra-plugins")
	}
	if len(missing) > 0 {
		sortStrings(missing)
		return fmt.Errorf("missing packages for the lab: %s; install them with `apt-get install %s` (or `make deps`)", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	if err := stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("/dev/net/tun is missing (userspace IPsec needs TUN): create it with `mkdir -p /dev/net && mknod /dev/net/tun c 10 200`")
	}
	return nil
}

// LoadTopology loads the site files of dir without any environment overlay: the lab
// follows the sites' own nodes and addresses.
func LoadTopology(dir string) (*sites.Topology, error) {
	return sites.Load(sites.Options{Dir: dir, Env: "", Environ: []string{}})
}

// Up builds the lab, or checks that it is up as asked. Idempotent: a second Up over a
// running lab changes nothing. A failed first Up removes what it made.
func Up(ctx context.Context, opts Options) (res *Result, err error) {
	opts.defaults()
	if err := Preflight(); err != nil {
		return nil, err
	}
	unlock, err := lock(opts.StateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	topo, err := LoadTopology(opts.ConfigDir)
	if err != nil {
		return nil, fmt.Errorf("load site config: %w", err)
	}
	layout, err := NewLayout(topo, opts.Sites, opts.Prefix, opts.StateDir)
	if err != nil {
		return nil, err
	}
	u := &upper{opts: opts, layout: layout, topo: topo, p: opts.Progress, exited: map[string]chan error{}}
	fresh := false
	old, err := ReadState(opts.StateDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		fresh = true
		for _, ns := range layout.Namespaces() {
			if _, statErr := os.Stat("/run/netns/" + ns); statErr == nil {
				return nil, fmt.Errorf("network namespace %s already exists but %s has no lab record: a crashed lab or another tool made it; remove it (`sitectl lab down --prefix %s` removes the lab's namespaces) or pick another --prefix", ns, opts.StateDir, opts.Prefix)
			}
		}
		u.state = &State{Prefix: opts.Prefix, ConfigDir: opts.ConfigDir, Layout: layout, StartedAt: time.Now().UTC()}
	case err != nil:
		return nil, err
	default:
		if problem := staleReason(old); problem != "" {
			return nil, fmt.Errorf("stale lab state in %s: %s; clear it with `sitectl lab down --prefix %s`, then run `sitectl lab up` again", opts.StateDir, problem, opts.Prefix)
		}
		if !sameSites(old.Layout, layout) {
			return nil, fmt.Errorf("a lab with sites %s is already up in %s; `sitectl lab down` it before bringing up sites %s", strings.Join(siteNames(old.Layout), ","), opts.StateDir, strings.Join(siteNames(layout), ","))
		}
		u.state = old
		u.state.Layout = layout
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, err
	}
	if err := u.save(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && fresh {
			u.p.Warnf("lab up failed; removing what it made")
			if derr := down(context.Background(), opts, u.state, nil); derr != nil {
				err = fmt.Errorf("%w (and cleaning up failed too: %v; run `sitectl lab down --prefix %s`)", err, derr, opts.Prefix)
			}
		}
	}()
	before := fingerprint(u.state)
	if err := u.build(ctx); err != nil {
		return nil, err
	}
	u.state.Complete = true
	if err := u.save(); err != nil {
		return nil, err
	}
	return &Result{Changed: fresh || fingerprint(u.state) != before || u.changed, State: u.state}, nil
}

func (u *upper) step(msg string, fn func() error) error {
	done := u.p.Step("%s", msg)
	err := fn()
	done(err)
	return err
}

// build runs every part of lab up in order.
func (u *upper) build(ctx context.Context) error {
	l := u.layout
	if err := u.step("WAN namespace "+l.WANNS, func() error { return u.buildWAN(ctx) }); err != nil {
		return err
	}
	for i := range l.Sites {
		s := &l.Sites[i]
		if err := u.step(fmt.Sprintf("site %s: gateway %s, %d node namespace(s)", s.Name, s.GatewayNS, len(s.Nodes)), func() error { return u.buildSite(ctx, s) }); err != nil {
			return err
		}
	}
	for i := range l.Sites {
		s := &l.Sites[i]
		if err := u.step("site "+s.Name+": charon (userspace IPsec, vici "+s.Vici+")", func() error { return u.startCharon(ctx, s) }); err != nil {
			return err
		}
	}
	if !u.opts.NoImages {
		if err := u.buildImages(ctx); err != nil {
			return err
		}
	}
	if err := u.step("engines: one dockerd per node", func() error { return u.startEngines(ctx) }); err != nil {
		return err
	}
	if !u.opts.NoImages {
		if err := u.loadImages(ctx); err != nil {
			return err
		}
	}
	for i := range l.Sites {
		s := &l.Sites[i]
		if err := u.step("site "+s.Name+": swarm", func() error { return u.swarm(ctx, s) }); err != nil {
			return err
		}
	}
	if err := u.step("environment overlay "+filepath.Join(u.opts.ConfigDir, sites.EnvDir, EnvName+".yaml"), func() error { return u.writeOverlay() }); err != nil {
		return err
	}
	if url := l.ReceiverURL(u.topo.Hub); url != "" {
		if err := u.step("alert receiver "+url+" (the hub's Alertmanager posts there)", func() error { return u.startReceiver(ctx, u.topo.Hub) }); err != nil {
			return err
		}
	}
	return u.step("gateways: transit addresses for userspace IPsec", func() error { return u.transit(ctx) })
}

// transit gives each gateway the addresses kernel-libipsec needs to carry traffic
// between its tunnels (tunnels.TransitAddresses: the hub routes spoke to spoke). It is
// network setup of the lab's gateways, so lab up does it before any tunnel is loaded;
// the tunnels themselves are loaded by sitectl deploy over vici.
func (u *upper) transit(ctx context.Context) error {
	topo, err := sites.Load(sites.Options{Dir: u.opts.ConfigDir, Env: EnvName, Environ: []string{}})
	if err != nil {
		return err
	}
	for _, sl := range u.layout.Sites {
		g, err := tunnels.BuildSite(topo, sl.Name)
		if err != nil {
			return err
		}
		if err := tunnels.SetupTransit(ctx, NamespaceReach(sl.GatewayNS), g); err != nil {
			return err
		}
	}
	return nil
}

// startEngines starts every node's dockerd, in parallel (each takes ~0.5-1 s).
func (u *upper) startEngines(ctx context.Context) error {
	type result struct {
		node string
		err  error
	}
	var nodes []*NodeLayout
	for i := range u.layout.Sites {
		for j := range u.layout.Sites[i].Nodes {
			nodes = append(nodes, &u.layout.Sites[i].Nodes[j])
		}
	}
	// Start sequentially (state bookkeeping), wait in parallel.
	waits := make(chan result, len(nodes))
	for _, n := range nodes {
		ready, err := u.launchDockerd(ctx, n)
		if err != nil {
			return err
		}
		go func(n *NodeLayout) { waits <- result{n.Name, ready()} }(n)
	}
	var errs []error
	for range nodes {
		if r := <-waits; r.err != nil {
			errs = append(errs, fmt.Errorf("dockerd of %s: %w", r.node, r.err))
		}
	}
	return errors.Join(errs...)
}

func (u *upper) swarm(ctx context.Context, s *SiteLayout) error {
	site := u.topo.Site(s.Name)
	engines := map[string]swarm.Engine{}
	for _, n := range s.Nodes {
		c, err := newEngineClient(n.Socket)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		engines[n.Name] = c
	}
	steps, err := swarm.Plan(ctx, site, engines)
	if err != nil {
		return err
	}
	if len(steps) > 0 {
		u.changed = true
	}
	for _, st := range steps {
		u.p.Infof("%s", st)
	}
	return swarm.Apply(ctx, steps)
}

// staleReason says why a recorded lab is not running as recorded ("" when it is).
func staleReason(s *State) string {
	if !s.Complete {
		return "a previous `lab up` did not finish (crashed or interrupted)"
	}
	for _, ns := range s.Namespaces {
		if _, err := os.Stat("/run/netns/" + ns); err != nil {
			return "namespace " + ns + " is gone"
		}
	}
	for _, p := range s.Processes {
		if !p.Alive() {
			return fmt.Sprintf("%s (pid %d) is no longer running", p.Name, p.PID)
		}
	}
	return ""
}

func sameSites(a, b *Layout) bool {
	if a == nil || b == nil {
		return false
	}
	return strings.Join(siteNames(a), ",") == strings.Join(siteNames(b), ",")
}

func siteNames(l *Layout) []string {
	var out []string
	for _, s := range l.Sites {
		out = append(out, s.Name)
	}
	return out
}

func fingerprint(s *State) string {
	var b strings.Builder
	for _, n := range s.Namespaces {
		b.WriteString(n + ";")
	}
	for _, p := range s.Processes {
		fmt.Fprintf(&b, "%s=%d;", p.Name, p.PID)
	}
	return b.String()
}
