package mongo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sitectl/sitectl/sites"
)

// ContextDialer opens connections to members (mongo-driver's options.ContextDialer).
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Conn reaches the members of the replica set, one direct client per member,
// opened on first use. Each member is dialled with the Reach of its site (inside
// the site's gateway namespace in the lab), the management path.
type Conn struct {
	topo *sites.Topology
	// Dialer overrides how member addresses are dialled (nil: with the Reach of the
	// member's site when a site has a Reach dialer, the plain network otherwise).
	Dialer ContextDialer
	// Timeout bounds each command and server selection (default 5s).
	Timeout time.Duration

	mu      sync.Mutex
	clients map[string]*mongo.Client
}

// NewConn returns a Conn for the topology's replica set.
func NewConn(topo *sites.Topology) *Conn {
	return &Conn{topo: topo, Timeout: 5 * time.Second, clients: map[string]*mongo.Client{}}
}

// Close disconnects every client.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, cl := range c.clients {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = cl.Disconnect(ctx)
		cancel()
		delete(c.clients, h)
	}
}

// siteDialer dials a member with the Reach of the site that holds it: the site
// whose config lists the host, else the site whose LAN contains its address.
type siteDialer struct{ topo *sites.Topology }

func (d siteDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if s := d.site(addr); s != nil && s.Reach.Dial != nil {
		return s.Reach.Dial(ctx, network, addr)
	}
	var nd net.Dialer
	nd.FallbackDelay = -1 // as a Reach dialer: one address, dialled serially
	return nd.DialContext(ctx, network, addr)
}

func (d siteDialer) site(addr string) *sites.Site {
	if s := d.topo.Site(SiteOf(d.topo, addr)); s != nil {
		return s
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil
	}
	for _, s := range d.topo.Sites {
		if lan, err := netip.ParsePrefix(s.LAN); err == nil && lan.Contains(ip) {
			return s
		}
	}
	return nil
}

func (c *Conn) dialer() ContextDialer {
	if c.Dialer != nil {
		return c.Dialer
	}
	for _, s := range c.topo.Sites {
		if s.Reach.Dial != nil {
			return siteDialer{c.topo}
		}
	}
	return nil
}

// dial opens and closes a connection to host, as the member's client dials it.
func (c *Conn) dial(ctx context.Context, host string) error {
	var d ContextDialer = &net.Dialer{}
	if cd := c.dialer(); cd != nil {
		d = cd
	}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return conn.Close()
}

// credential returns the SCRAM credential from the config of the site holding
// host (or the first site naming a user); none when no user is configured.
func (c *Conn) credential(host string) (*options.Credential, error) {
	var src *sites.Site
	if s := c.topo.Site(SiteOf(c.topo, host)); s != nil && s.Mongo.User != "" {
		src = s
	}
	for _, s := range c.topo.Sites {
		if src == nil && s.Mongo.User != "" {
			src = s
		}
	}
	if src == nil {
		return nil, nil
	}
	pw, err := src.Mongo.Password.Resolve()
	if err != nil {
		return nil, fmt.Errorf("mongo user %s of %s: %w", src.Mongo.User, src.Name, err)
	}
	return &options.Credential{Username: src.Mongo.User, Password: string(pw), AuthSource: "admin"}, nil
}

// client returns the direct client of one member.
func (c *Conn) client(host string) (*mongo.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.clients[host]; cl != nil {
		return cl, nil
	}
	opts := options.Client().SetHosts([]string{host}).SetDirect(true).
		SetServerSelectionTimeout(c.Timeout).SetConnectTimeout(c.Timeout).
		SetAppName("sitectl").SetRetryWrites(false)
	if d := c.dialer(); d != nil {
		opts.SetDialer(d)
	}
	cred, err := c.credential(host)
	if err != nil {
		return nil, err
	}
	if cred != nil {
		opts.SetAuth(*cred)
	}
	cl, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo member %s: %w", host, err)
	}
	c.clients[host] = cl
	return cl, nil
}

// Run runs an admin command on one member and decodes the reply into out (may be nil).
func (c *Conn) Run(ctx context.Context, host string, cmd bson.D, out any) error {
	cl, err := c.client(host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	res := cl.Database("admin").RunCommand(ctx, cmd)
	if out == nil {
		return res.Err()
	}
	return res.Decode(out)
}

// Server error codes sitectl reacts to.
const (
	CodeNotYetInitialized            = 94
	CodeNotWritablePrimary           = 10107
	CodeConfigurationInProgress      = 109
	CodeNewConfigIncompatible        = 103
	CodeCurrentConfigNotCommittedYet = 308
	CodeNotPrimaryNoSecondaryOk      = 13435
	CodeInterruptedDueToReplChange   = 11602
	CodePrimarySteppedDown           = 189
)

// ServerCode returns the server error code of err (0 when it is not a server error).
func ServerCode(err error) int {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		for _, code := range []int{CodeNotYetInitialized, CodeNotWritablePrimary, CodeConfigurationInProgress, CodeNewConfigIncompatible, CodeCurrentConfigNotCommittedYet} {
			if se.HasErrorCode(code) {
				return code
			}
		}
	}
	return 0
}
