package sites

import (
	"context"
	"net"
	"net/http"
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

// Reach is how sitectl reaches one site's management addresses from the machine it
// runs on. It is not configuration: the zero value is the host's own network and
// no shell on the gateway, and an environment that knows better installs its own
// after loading the topology (the lab, package lab/labreach: a site's LAN is
// reached from inside its gateway's network namespace).
type Reach struct {
	// Dial opens connections into the site's LAN: its databases and the hub's
	// Alertmanager. nil dials from the host's own network.
	Dial DialFunc
	// Gateway runs a command on the site's gateway host (ip, to give a
	// kernel-libipsec hub its transit addresses). nil: sitectl has no shell there.
	Gateway GatewayFunc
	// GatewayName names where Gateway runs, for plans (a namespace in the lab).
	GatewayName string
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
