package tunnels

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/strongswan/govici/vici"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// ComponentTunnel is the component of the steps this part plans.
const ComponentTunnel plan.Component = "tunnel"

// Part is the tunnels part of a site's deploy path (plan.Part): certificates that
// are missing or expiring are created, credentials charon lacks are loaded,
// connections that are missing or differ are (re)loaded, and connections sitectl
// made that the topology no longer has are removed — all over vici.
type Part struct{}

// Name is the part's name in plans.
func (Part) Name() string { return "tunnels" }

// Plan reads the gateway's live state over vici and returns the steps. It changes
// nothing. An expired or invalid certificate, or an unreadable PSK, is an error:
// nothing is installed until it is fixed (`sitectl tunnels certs`).
func (Part) Plan(ctx context.Context, topo *sites.Topology, site *sites.Site) ([]plan.Step, error) {
	g, err := BuildSite(topo, site.Name)
	if err != nil {
		return nil, err
	}
	if len(g.Conns) == 0 {
		return nil, nil
	}
	// A pre-shared key is read when a step loads it: a missing one fails the plan
	// now, not the deploy half-way.
	for _, conn := range g.Conns {
		if conn.Auth == "psk" {
			if _, err := conn.PSK.Resolve(); err != nil {
				return nil, fmt.Errorf("link %s: pre-shared key (tunnel.psk): %w", conn.Name, err)
			}
		}
	}
	var steps []plan.Step
	certSteps, err := planCerts(topo, site)
	if err != nil {
		return nil, err
	}
	steps = append(steps, certSteps...)
	transit, err := planTransit(ctx, site, g)
	if err != nil {
		return nil, err
	}
	steps = append(steps, transit...)

	c, err := Dial(ctx, g)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	live, err := c.liveConns(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := c.planCredentials(ctx, topo, site, g, len(certSteps) > 0)
	if err != nil {
		return nil, err
	}
	steps = append(steps, creds...)
	sas, err := c.SAs(ctx)
	if err != nil {
		return nil, err
	}
	for _, conn := range g.Conns {
		steps = append(steps, planConn(site, g, conn, live, sas))
	}
	steps = append(steps, planStale(topo, site, g, live)...)
	if len(g.Notes) > 0 && len(steps) > 0 {
		last := &steps[len(steps)-1]
		last.Note = plan.JoinNotes(append([]string{last.Note}, g.Notes...)...)
	}
	return steps, nil
}

// planCredentials returns the step that loads the CA, certificate and key into
// charon, unless charon already holds this exact certificate. They are on disk
// once the certificate steps are applied (certsPlanned: then they are loaded).
func (c *Client) planCredentials(ctx context.Context, topo *sites.Topology, site *sites.Site, g *Gateway, certsPlanned bool) ([]plan.Step, error) {
	if site.Tunnel.Auth != "x509" {
		return nil, nil
	}
	loaded := false
	if !certsPlanned {
		_, gwp := SiteCerts(topo, site)
		if _, der, err := readCert(gwp.gwCert(g.ID)); err == nil {
			if loaded, err = c.hasCert(ctx, der); err != nil {
				return nil, err
			}
		}
	}
	if loaded {
		return nil, nil
	}
	return []plan.Step{{Site: site.Name, Component: ComponentTunnel, Action: plan.Create,
		Name: "credentials " + g.ID, Diff: []string{"load CA, certificate and private key into charon"},
		Apply: func(ctx context.Context) error {
			m, err := Prepare(topo, g)
			if err != nil {
				return err
			}
			return withClient(ctx, g, func(c *Client) error { return c.LoadCredentials(ctx, m.Creds) })
		}}}, nil
}

// planConn returns the step of one connection: load it when charon lacks it,
// reload it when it differs, initiate its CHILD_SA when only that is missing.
func planConn(site *sites.Site, g *Gateway, conn Conn, live map[string]connView, sas []SA) plan.Step {
	want := desiredView(conn)
	got, ok := live[conn.Name]
	if ok && len(diffViews(got, want)) == 0 {
		if step := childMissing(sas, conn, g); step != nil {
			step.Site = site.Name
			return *step
		}
	}
	var st plan.Step
	switch {
	case !ok:
		st = plan.Step{Action: plan.Create, Diff: describe(want)}
		st.Note = fmt.Sprintf("link to %s; if it was cut with `tunnels down`, this loads it again", conn.Peer)
	case !slices.Equal(diffViews(got, want), nil):
		st = plan.Step{Action: plan.Reload, Diff: diffViews(got, want),
			Note: "established SAs keep the old settings until renegotiated: the link is re-established (a short interruption)"}
	default:
		st = plan.Step{Action: plan.Noop}
	}
	st.Site, st.Component, st.Name = site.Name, ComponentTunnel, conn.Name
	if st.Action != plan.Noop {
		reload := st.Action == plan.Reload
		st.Apply = func(ctx context.Context) error {
			return withClient(ctx, g, func(c *Client) error { return c.loadConn(ctx, conn, reload) })
		}
	}
	return st
}

// loadConn loads the connection (and its PSK); a reloaded one is renegotiated.
func (c *Client) loadConn(ctx context.Context, conn Conn, reload bool) error {
	if conn.Auth == "psk" {
		v, err := conn.PSK.Resolve()
		if err != nil {
			return err
		}
		if err := c.LoadShared(ctx, conn, v); err != nil {
			return err
		}
	}
	if err := c.LoadConn(ctx, conn); err != nil {
		return err
	}
	if reload {
		// A replaced connection does not change the SAs built from the old
		// one: renegotiate so the new selectors and settings apply now.
		if err := c.Terminate(ctx, conn.Name, 3*time.Second); err != nil {
			return err
		}
		_ = c.Initiate(ctx, conn, 5*time.Second)
		return nil
	}
	c.kick(ctx, conn)
	return nil
}

// planStale returns the steps that remove the connections sitectl made that the
// topology no longer has (connections sitectl did not make are left alone).
func planStale(topo *sites.Topology, site *sites.Site, g *Gateway, live map[string]connView) []plan.Step {
	var steps []plan.Step
	for _, name := range slices.Sorted(maps.Keys(live)) {
		if g.Conn(name) != nil || !isLinkName(topo, name) {
			continue
		}
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentTunnel, Action: plan.Remove, Name: name,
			Note: "no longer in the topology: its SAs are terminated",
			Apply: func(ctx context.Context) error {
				return withClient(ctx, g, func(c *Client) error {
					if err := c.UnloadConn(ctx, name); err != nil {
						return err
					}
					return c.Terminate(ctx, name, 3*time.Second)
				})
			}})
	}
	return steps
}

func withClient(ctx context.Context, g *Gateway, fn func(*Client) error) error {
	c, err := Dial(ctx, g)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// planCerts returns the steps that create or renew certificates.
func planCerts(topo *sites.Topology, site *sites.Site) ([]plan.Step, error) {
	if site.Tunnel.Auth != "x509" {
		return nil, nil
	}
	ca, gwp := SiteCerts(topo, site)
	for _, d := range []string{ca.Dir, gwp.Dir} {
		if err := CheckOutsideRepo(d); err != nil {
			return nil, err
		}
	}
	caSt, gwSt := Check(ca, gwp, site.Gateway.ID)
	var steps []plan.Step
	ensure := func(context.Context) error {
		_, _, err := Ensure(ca, gwp, site.Gateway.ID, site.Tunnel.KeyType, site.Tunnel.CertLifetime.D())
		return err
	}
	switch caSt.State {
	case CertMissing:
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentTunnel, Action: plan.Create, Name: "ca " + caSt.Path,
			Diff: []string{"key " + site.Tunnel.KeyType}, Apply: ensure})
	case CertOK:
	default:
		return nil, fmt.Errorf("tunnels %s: CA %s is %s: %s; replace it and reissue every gateway certificate", site.Name, caSt.Path, caSt.State, caSt.Problem)
	}
	switch gwSt.State {
	case CertMissing:
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentTunnel, Action: plan.Create, Name: "certificate " + site.Gateway.ID,
			Diff: []string{"SAN " + site.Gateway.ID, "key " + site.Tunnel.KeyType, "lifetime " + site.Tunnel.CertLifetime.D().String()}, Apply: ensure})
	case CertExpiring:
		steps = append(steps, plan.Step{Site: site.Name, Component: ComponentTunnel, Action: plan.Update, Name: "certificate " + site.Gateway.ID,
			// The date, not the days left: a saved plan (deploy --plan) still holds a day later.
			Diff: []string{"renew: expires on " + gwSt.NotAfter.Format(time.DateOnly)}, Note: gwSt.Problem, Apply: ensure})
	case CertOK:
	default:
		if caSt.State == CertMissing {
			break
		}
		return nil, fmt.Errorf("tunnels %s: certificate %s is %s: %s; run `sitectl tunnels certs --site %s` to renew it (nothing was installed)",
			site.Name, gwSt.Path, gwSt.State, gwSt.Problem, site.Name)
	}
	return steps, nil
}

// connView is the part of a connection both list-conns shows and sitectl sets, as
// comparable text.
type connView map[string]string

func desiredView(c Conn) connView {
	class := "public key"
	if c.Auth == "psk" {
		class = "pre-shared key"
	}
	return connView{
		"local_addrs":  c.LocalAddr,
		"remote_addrs": c.RemoteAddr,
		"local id":     c.LocalID,
		"remote id":    c.RemoteID,
		"auth":         class,
		"dpd_delay":    strings.TrimSuffix(dpdSeconds(c.DPDDelay), "s"),
		"child":        c.Child,
		"local_ts":     strings.Join(c.LocalTS, ","),
		"remote_ts":    strings.Join(c.RemoteTS, ","),
		"start_action": c.StartAction,
	}
}

func describe(v connView) []string {
	return []string{
		fmt.Sprintf("%s → %s (%s → %s)", v["local_addrs"], v["remote_addrs"], v["local id"], v["remote id"]),
		fmt.Sprintf("child %s: %s ⇄ %s, start %s", v["child"], v["local_ts"], v["remote_ts"], v["start_action"]),
	}
}

// diffViews lists what differs, for keys the live view reports.
func diffViews(got, want connView) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		if !ok {
			continue // this charon does not report the setting
		}
		if g != want[k] {
			line := fmt.Sprintf("%s: %s → %s", k, orNone(g), want[k])
			if k == "child" {
				line += " (proposals, start action, DPD or auth changed)"
			}
			out = append(out, line)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// liveConns reads the loaded connections (list-conns) as comparable views.
func (c *Client) liveConns(ctx context.Context) (map[string]connView, error) {
	msgs, err := c.stream(ctx, "list-conns", "list-conn", nil)
	if err != nil {
		return nil, err
	}
	out := map[string]connView{}
	for _, m := range msgs {
		for _, name := range m.Keys() {
			conn, ok := m.Get(name).(*vici.Message)
			if !ok {
				continue
			}
			v := connView{
				"local_addrs":  strings.Join(list(conn, "local_addrs"), ","),
				"remote_addrs": strings.Join(list(conn, "remote_addrs"), ","),
			}
			if d := str(conn, "dpd_delay"); d != "" {
				v["dpd_delay"] = d
			}
			for _, k := range conn.Keys() {
				sec, ok := conn.Get(k).(*vici.Message)
				if !ok {
					continue
				}
				switch {
				case strings.HasPrefix(k, "local"):
					v["local id"], v["auth"] = str(sec, "id"), str(sec, "class")
				case strings.HasPrefix(k, "remote"):
					v["remote id"] = str(sec, "id")
				case k == "children":
					for _, cn := range sec.Keys() {
						ch, ok := sec.Get(cn).(*vici.Message)
						if !ok {
							continue
						}
						v["child"] = cn
						v["local_ts"] = strings.Join(list(ch, "local-ts"), ",")
						v["remote_ts"] = strings.Join(list(ch, "remote-ts"), ",")
						if sa := str(ch, "start_action"); sa != "" {
							v["start_action"] = sa
						}
					}
				}
			}
			out[name] = v
		}
	}
	return out, nil
}

// hasCert reports whether charon holds the certificate (list-certs).
func (c *Client) hasCert(ctx context.Context, der []byte) (bool, error) {
	msgs, err := c.stream(ctx, "list-certs", "list-cert", msg("type", "X509"))
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		if d, ok := m.Get("data").(string); ok && bytes.Equal([]byte(d), der) {
			return true, nil
		}
	}
	return false, nil
}

// planTransit returns the step that gives a kernel-libipsec hub its transit
// addresses (TransitAddresses). sitectl can set them only where the site's Reach
// has a shell on the gateway (the lab's namespaces); elsewhere the plan says what
// is needed.
func planTransit(ctx context.Context, site *sites.Site, g *Gateway) ([]plan.Step, error) {
	want := TransitAddresses(g)
	if len(want) == 0 {
		return nil, nil
	}
	r := site.Reach
	if r.Gateway == nil {
		return []plan.Step{{Site: site.Name, Component: ComponentTunnel, Action: plan.Noop, Name: "transit addresses",
			Note: fmt.Sprintf("kernel-libipsec: the gateway must own %s (tunnels.SetupTransit); sitectl sets them only in the lab", strings.Join(want, ", "))}}, nil
	}
	missing, err := missingTransit(ctx, r.Gateway, g)
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	return []plan.Step{{Site: site.Name, Component: ComponentTunnel, Action: plan.Create, Name: "transit addresses",
		Diff:  []string{"on " + TransitInterface + " in " + r.GatewayName + ": " + strings.Join(missing, ", ")},
		Note:  "kernel-libipsec needs a local address in every local selector to route it",
		Apply: func(ctx context.Context) error { return SetupTransit(ctx, r, g) }}}, nil
}

// childMissing returns a step when the connection's IKE_SA is established but its
// CHILD_SA is not installed: charon does not retry a refused CHILD_SA by itself (e.g.
// one refused before the hub had its transit addresses), so the link would stay down
// while the configuration matches.
func childMissing(sas []SA, conn Conn, g *Gateway) *plan.Step {
	sa := bestSA(sas, conn.Name)
	if sa == nil || sa.State != "ESTABLISHED" {
		return nil
	}
	for _, ch := range sa.Children {
		if ch.Name == conn.Child && ch.State == "INSTALLED" {
			return nil
		}
	}
	return &plan.Step{Component: ComponentTunnel, Action: plan.Update, Name: conn.Name,
		Diff: []string{"IKE_SA established without CHILD_SA " + conn.Child + " → initiate it"},
		Apply: func(ctx context.Context) error {
			return withClient(ctx, g, func(c *Client) error { return c.Initiate(ctx, conn, InitiateTimeout) })
		}}
}
