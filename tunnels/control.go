package tunnels

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sitectl/sitectl/sites"
)

// InitiateTimeout bounds how long `tunnels up` waits for a CHILD_SA.
var InitiateTimeout = 15 * time.Second

// CutSettle is how long Cut waits after charon lists no SA of the link, for the
// policies and routes to be removed.
var CutSettle = 300 * time.Millisecond

// Material is what a gateway needs loaded besides its connections, read and checked
// before anything is sent to charon: credentials for x509 links, keys for PSK links.
type Material struct {
	Creds   *Credentials
	PSKs    map[string][]byte // link → key; never printed
	Warning string            // certificate expiring soon
}

// Prepare checks and reads a gateway's material. Any problem (missing or expired
// certificate, unreadable PSK) is an error, so nothing is installed half-way.
func Prepare(topo *sites.Topology, g *Gateway) (*Material, error) {
	s := topo.Site(g.Site)
	if s == nil {
		return nil, fmt.Errorf("no site %q", g.Site)
	}
	m := &Material{PSKs: map[string][]byte{}}
	needX509 := false
	for _, c := range g.Conns {
		if c.Auth == "psk" {
			v, err := c.PSK.Resolve()
			if err != nil {
				return nil, fmt.Errorf("tunnels %s: link %s: %w", g.Site, c.Name, err)
			}
			m.PSKs[c.Name] = v
			continue
		}
		needX509 = true
	}
	if needX509 {
		ca, gw := SiteCerts(topo, s)
		cr, warn, err := Load(ca, gw, g.ID)
		if err != nil {
			return nil, fmt.Errorf("tunnels %s: %w", g.Site, err)
		}
		m.Creds, m.Warning = cr, warn
	}
	return m, nil
}

func isLinkName(topo *sites.Topology, name string) bool {
	for _, a := range topo.SiteNames() {
		if b, ok := strings.CutPrefix(name, a+"-"); ok && topo.Site(b) != nil {
			return true
		}
	}
	return false
}

// ends returns both gateways of a link.
func ends(topo *sites.Topology, linkName string) (sites.Link, []*Gateway, error) {
	l, err := topo.Link(linkName)
	if err != nil {
		return l, nil, err
	}
	gws, err := Build(topo)
	if err != nil {
		return l, nil, err
	}
	var out []*Gateway
	for _, site := range []string{l.A, l.B} {
		for _, g := range gws {
			if g.Site == site {
				out = append(out, g)
			}
		}
	}
	return l, out, nil
}

// Cut takes a link down at both ends: the connection is unloaded (so its trap
// policy and DPD restart cannot bring it straight back) and its IKE_SA terminated.
// An end that cannot be reached is reported, the other end is still cut; the link is
// then down because the reachable end refuses it. Heal undoes it.
func Cut(ctx context.Context, topo *sites.Topology, linkName string) error {
	l, gws, err := ends(topo, linkName)
	if err != nil {
		return err
	}
	var errs []string
	for _, g := range gws {
		if err := cutEnd(ctx, g, l.Name()); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) == len(gws) {
		return fmt.Errorf("cut %s: %s", l.Name(), strings.Join(errs, "; "))
	}
	if len(errs) > 0 {
		return fmt.Errorf("cut %s: only one end was cut: %s", l.Name(), strings.Join(errs, "; "))
	}
	return nil
}

func cutEnd(ctx context.Context, g *Gateway, name string) error {
	c, err := Dial(ctx, g)
	if err != nil {
		return err
	}
	defer c.Close()
	names, err := c.ConnNames(ctx)
	if err != nil {
		return err
	}
	if slices.Contains(names, name) {
		if err := c.UnloadConn(ctx, name); err != nil {
			return err
		}
	}
	// Unloading starts deleting the SA in the background; terminate and wait until
	// no SA of the connection is left, so traffic is cut when Cut returns.
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Terminating an SA that is already being deleted can fail; what counts is
		// that no SA is left, checked below.
		terr := c.Terminate(ctx, name, 3*time.Second)
		sas, err := c.SAs(ctx)
		if err != nil {
			return err
		}
		if bestSA(sas, name) == nil {
			// charon drops a deleted IKE_SA from its list a moment before the CHILD_SA's
			// policies and routes are gone; give the data path that moment.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(CutSettle):
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway %s: IKE_SA %s still present 10s after terminate (%v)", g.Site, name, terr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Heal brings a cut link back: both ends load the connection again (credentials
// are loaded first, in case charon restarted); the spoke end initiates it unless
// charon already does (start_action = start), and Heal waits until both ends report
// the CHILD_SA installed (at most InitiateTimeout).
func Heal(ctx context.Context, topo *sites.Topology, linkName string) error {
	l, gws, err := ends(topo, linkName)
	if err != nil {
		return err
	}
	mats := make([]*Material, len(gws))
	for i, g := range gws {
		if mats[i], err = Prepare(topo, g); err != nil {
			return fmt.Errorf("heal %s: %w", l.Name(), err)
		}
	}
	// The B end (the answering end) loads first, so that the A end's start action
	// finds it ready instead of failing and waiting for its next keying try.
	for _, i := range []int{1, 0} {
		if err := healEnd(ctx, gws[i], l.Name(), mats[i], false); err != nil {
			return fmt.Errorf("heal %s: %w", l.Name(), err)
		}
	}
	// The A end (the spoke, or the first of two spokes) initiates. With start_action
	// start, loading did it, unless the connection was loaded already (a link that is
	// down rather than cut): then initiate explicitly after a short wait.
	if c := gws[0].Conn(l.Name()); c != nil && c.StartAction != "start" {
		if err := healEnd(ctx, gws[0], l.Name(), nil, true); err != nil {
			return fmt.Errorf("heal %s: %w", l.Name(), err)
		}
	} else if WaitUp(ctx, topo, l.Name(), 3*time.Second) != nil {
		if err := healEnd(ctx, gws[0], l.Name(), nil, true); err != nil {
			return fmt.Errorf("heal %s: %w", l.Name(), err)
		}
	}
	return WaitUp(ctx, topo, l.Name(), InitiateTimeout)
}

// WaitUp polls both ends of a link until it is up, or fails after timeout with the
// last state seen.
func WaitUp(ctx context.Context, topo *sites.Topology, linkName string, timeout time.Duration) error {
	l, err := topo.Link(linkName)
	if err != nil {
		return err
	}
	linkName = l.Name()
	deadline := time.Now().Add(timeout)
	for {
		st, err := Status(ctx, topo, l.A, l.B)
		if err != nil {
			return err
		}
		var last LinkStatus
		for _, s := range st {
			if s.Link == linkName {
				last = s
			}
		}
		if last.State == StateUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %s not up after %s (state %s); check both gateways with `sitectl tunnels status`", linkName, timeout, last.State)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func healEnd(ctx context.Context, g *Gateway, name string, m *Material, initiate bool) error {
	conn := g.Conn(name)
	if conn == nil {
		return fmt.Errorf("gateway %s has no connection %s", g.Site, name)
	}
	c, err := Dial(ctx, g)
	if err != nil {
		return err
	}
	defer c.Close()
	if initiate {
		return c.Initiate(ctx, *conn, InitiateTimeout)
	}
	if m.Creds != nil {
		if err := c.LoadCredentials(ctx, m.Creds); err != nil {
			return err
		}
	}
	if v, ok := m.PSKs[name]; ok {
		if err := c.LoadShared(ctx, *conn, v); err != nil {
			return err
		}
	}
	return c.LoadConn(ctx, *conn)
}

// kick initiates a just-loaded connection whose end does not start it by itself
// (start_action trap or none), unless an IKE_SA is already established. It is best
// effort: when the peer has not loaded its end yet the attempt fails, and the peer
// initiates (start) or kicks when it loads. This is what makes the order in which
// the sites are deployed irrelevant.
func (c *Client) kick(ctx context.Context, conn Conn) {
	if conn.StartAction == "start" {
		return
	}
	if sas, err := c.SAs(ctx); err == nil {
		if sa := bestSA(sas, conn.Name); sa != nil && sa.State == "ESTABLISHED" {
			return
		}
	}
	_ = c.Initiate(ctx, conn, 5*time.Second)
}
