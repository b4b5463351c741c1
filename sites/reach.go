package sites

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"time"
)

// DialFunc opens a connection to addr on network: the shape of net.Dialer's
// DialContext, which pgx (ConnConfig.DialFunc), net/http (Transport.DialContext)
// and mongo-driver (through DialContext) take.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DialContext calls f: a DialFunc is a context dialer (mongo-driver's
// options.ContextDialer).
func (f DialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// GatewayFunc runs argv on a site's gateway host and returns its combined output;
// a failure keeps the output in its error.
type GatewayFunc func(ctx context.Context, argv ...string) ([]byte, error)

// CommandFunc returns the command that runs argv as root on a site's gateway
// host, for a caller that streams its input and output.
type CommandFunc func(ctx context.Context, argv ...string) *exec.Cmd

// WANFunc prepares a vantage on the WAN the sites' gateways face, from which each
// of the given sites' LANs is reached through its gateway, as any WAN neighbour
// could reach it (an exposure audit probes from there).
type WANFunc func(ctx context.Context, sites []*Site) (WANVantage, error)

// WANVantage is a prepared WAN vantage.
type WANVantage struct {
	// From says where connections come from, for reports.
	From string
	// Dial opens connections from there.
	Dial DialFunc
	// Undo removes what preparing the vantage added; it is never nil.
	Undo func()
}

// Reach is how sitectl reaches one site's management addresses from the machine it
// runs on. It is not configuration: the zero value is the host's own network and
// no shell on the gateway, and an environment that knows better installs its own
// after loading the topology (the lab, package lab/labreach: a site's LAN is
// reached from inside its gateway's network namespace).
type Reach struct {
	// Dial opens connections into the site's LAN: its databases and the hub's
	// Alertmanager. nil dials from the host's own network. A Dial is taken to open
	// them from the gateway host itself (the lab: inside its namespace): the
	// gateway firewall then only has to let their replies in (tunnels/firewall).
	Dial DialFunc
	// Gateway runs a command on the site's gateway host (ip, to give a
	// kernel-libipsec hub its transit addresses). nil: sitectl has no shell there.
	Gateway GatewayFunc
	// GatewayName names where Gateway runs, for plans (a namespace in the lab).
	GatewayName string
	// GatewayCommand runs a command as root on the gateway host, streaming (the
	// gateway firewall's nft). nil: sitectl reaches the gateway the way
	// gateway.vici says (ssh://: over SSH; unix://: sitectl runs on the gateway).
	GatewayCommand CommandFunc
	// GatewayWhere says where GatewayCommand runs, for errors
	// ("namespace sl-douala-gw").
	GatewayWhere string
	// WAN prepares the vantage an exposure audit probes the site from. nil: this
	// machine.
	WAN WANFunc
}

// HTTPClient returns an HTTP client with the given timeout whose connections are
// made with r.Dial (without keep-alives); the default transport when r.Dial is nil.
func (r Reach) HTTPClient(timeout time.Duration) *http.Client {
	if r.Dial == nil {
		return &http.Client{Timeout: timeout}
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: r.Dial, DisableKeepAlives: true},
	}
}

// InLab reports whether the site's config names a lab network namespace
// (lab.namespace): the lab's exceptions apply (stand-in images, a self-made Kong
// certificate). How the lab is reached is its Reach, not this.
func (s *Site) InLab() bool { return s.Lab.Namespace != "" }

// NoReach is the error of code that needs the site's Reach for what, when the
// site's config names a lab namespace but no reach into it is installed (a
// topology loaded without labreach.Install): without one, what would run on or
// from this machine instead of the site's gateway.
func (s *Site) NoReach(what string) error {
	return fmt.Errorf("site %s: lab.namespace is %q in the site config, but no reach into that namespace is installed: refusing to run %s from this machine instead; sitectl installs it when it loads the topology, code that calls sites.Load itself must call labreach.Install(topo) (package lab/labreach)",
		s.Name, s.Lab.Namespace, what)
}
