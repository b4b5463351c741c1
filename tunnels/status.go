package tunnels

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/strongswan/govici/vici"

	"github.com/sitectl/sitectl/internal/text"
	"github.com/sitectl/sitectl/sites"
)

// LinkState is a link's state in a status report; its value is how reports name it.
type LinkState string

// Link states in a status report.
const (
	StateUp      LinkState = "up"      // IKE_SA established and CHILD_SA installed at every queried end
	StateDown    LinkState = "down"    // connection loaded, no working SA
	StateCut     LinkState = "cut"     // connection unloaded (tunnels down / a drill)
	StateUnknown LinkState = "unknown" // no end could be reached
)

// EndStatus is one gateway's view of a link, read with list-conns/list-sas.
type EndStatus struct {
	Site  string `json:"site"`
	Error string `json:"error,omitempty"`
	// Loaded says the connection is loaded (false after `tunnels down`).
	Loaded     bool      `json:"loaded"`
	IKEState   string    `json:"ike_state,omitempty"`   // ESTABLISHED, CONNECTING, ...
	ChildState string    `json:"child_state,omitempty"` // INSTALLED, ...
	Since      time.Time `json:"established_since,omitzero"`
	RemoteHost string    `json:"remote_host,omitempty"`
	BytesIn    uint64    `json:"bytes_in"`
	BytesOut   uint64    `json:"bytes_out"`
	PacketsIn  uint64    `json:"packets_in"`
	PacketsOut uint64    `json:"packets_out"`
	LocalTS    []string  `json:"local_ts,omitempty"`
	RemoteTS   []string  `json:"remote_ts,omitempty"`
}

// Up reports whether this end has an established IKE_SA with an installed CHILD_SA.
func (e EndStatus) Up() bool {
	return e.Error == "" && e.IKEState == "ESTABLISHED" && e.ChildState == "INSTALLED"
}

// LinkStatus is the state of one link from the ends that were queried.
type LinkStatus struct {
	Link  string      `json:"link"`
	State LinkState   `json:"state"`
	Ends  []EndStatus `json:"ends"`
}

// Status reads the state of every link of the given sites (all sites when none),
// from each queried site's own gateway. With one site selected only that gateway is
// asked. An unreachable gateway shows as an error on its ends, not a failure.
func Status(ctx context.Context, topo *sites.Topology, siteNames ...string) ([]LinkStatus, error) {
	sel, err := topo.Select(siteNames...)
	if err != nil {
		return nil, err
	}
	gws, err := Build(topo)
	if err != nil {
		return nil, err
	}
	queried := map[string]bool{}
	for _, s := range sel {
		queried[s.Name] = true
	}
	views := map[string]map[string]EndStatus{} // site → link → end
	for _, g := range gws {
		if queried[g.Site] {
			views[g.Site] = gatewayStatus(ctx, g)
		}
	}
	var out []LinkStatus
	for _, l := range topo.Links {
		if !queried[l.A] && !queried[l.B] {
			continue
		}
		ls := LinkStatus{Link: l.Name()}
		for _, site := range []string{l.A, l.B} {
			if queried[site] {
				ls.Ends = append(ls.Ends, views[site][l.Name()])
			}
		}
		ls.State = linkState(ls.Ends)
		out = append(out, ls)
	}
	return out, nil
}

func linkState(ends []EndStatus) LinkState {
	reached, up, loaded := 0, 0, 0
	for _, e := range ends {
		if e.Error != "" {
			continue
		}
		reached++
		if e.Up() {
			up++
		}
		if e.Loaded {
			loaded++
		}
	}
	switch {
	case reached == 0:
		return StateUnknown
	case up == reached:
		return StateUp
	case loaded < reached:
		return StateCut
	}
	return StateDown
}

// gatewayStatus is one gateway's view of each of its links.
func gatewayStatus(ctx context.Context, g *Gateway) map[string]EndStatus {
	out := map[string]EndStatus{}
	fail := func(err error) map[string]EndStatus {
		for _, c := range g.Conns {
			out[c.Name] = EndStatus{Site: g.Site, Error: err.Error()}
		}
		return out
	}
	c, err := Dial(ctx, g)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	names, err := c.ConnNames(ctx)
	if err != nil {
		return fail(err)
	}
	sas, err := c.SAs(ctx)
	if err != nil {
		return fail(err)
	}
	now := time.Now()
	for _, conn := range g.Conns {
		e := EndStatus{Site: g.Site, Loaded: slices.Contains(names, conn.Name)}
		if best := bestSA(sas, conn.Name); best != nil {
			e.IKEState, e.RemoteHost = best.State, best.RemoteHost
			if best.State == "ESTABLISHED" {
				e.Since = now.Add(-time.Duration(best.Established) * time.Second).Truncate(time.Second)
			}
			for _, ch := range best.Children {
				if ch.Name != conn.Child {
					continue
				}
				if e.ChildState != "INSTALLED" {
					e.ChildState, e.LocalTS, e.RemoteTS = ch.State, ch.LocalTS, ch.RemoteTS
				}
				e.BytesIn += ch.BytesIn
				e.BytesOut += ch.BytesOut
				e.PacketsIn += ch.PacketsIn
				e.PacketsOut += ch.PacketsOut
			}
		}
		out[conn.Name] = e
	}
	return out
}

// SA is one IKE_SA from list-sas.
type SA struct {
	Name        string
	State       string
	RemoteHost  string
	Established int64 // seconds ago
	Children    []ChildSA
}

// ChildSA is one CHILD_SA of an IKE_SA.
type ChildSA struct {
	Name                  string
	State                 string
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
	LocalTS, RemoteTS     []string
}

// SAs lists the IKE_SAs with their CHILD_SAs (list-sas).
func (c *Client) SAs(ctx context.Context) ([]SA, error) {
	msgs, err := c.stream(ctx, "list-sas", "list-sa", nil)
	if err != nil {
		return nil, err
	}
	var out []SA
	for _, m := range msgs {
		for _, name := range m.Keys() {
			ike, ok := m.Get(name).(*vici.Message)
			if !ok {
				continue
			}
			sa := SA{Name: name, State: str(ike, "state"), RemoteHost: str(ike, "remote-host"), Established: int64(num(ike, "established"))}
			if chs, ok := ike.Get("child-sas").(*vici.Message); ok {
				for _, k := range chs.Keys() {
					ch, ok := chs.Get(k).(*vici.Message)
					if !ok {
						continue
					}
					sa.Children = append(sa.Children, ChildSA{
						Name: str(ch, "name"), State: str(ch, "state"),
						BytesIn: num(ch, "bytes-in"), BytesOut: num(ch, "bytes-out"),
						PacketsIn: num(ch, "packets-in"), PacketsOut: num(ch, "packets-out"),
						LocalTS: list(ch, "local-ts"), RemoteTS: list(ch, "remote-ts"),
					})
				}
			}
			out = append(out, sa)
		}
	}
	return out, nil
}

// bestSA picks the connection's most useful IKE_SA: established with an installed
// child first (duplicates happen while both ends initiate at once).
func bestSA(sas []SA, name string) *SA {
	var best *SA
	score := func(s *SA) int {
		n := 0
		if s.State == "ESTABLISHED" {
			n += 2
		}
		for _, ch := range s.Children {
			if ch.State == "INSTALLED" {
				n++
				break
			}
		}
		return n
	}
	for i := range sas {
		if sas[i].Name != name {
			continue
		}
		if best == nil || score(&sas[i]) > score(best) {
			best = &sas[i]
		}
	}
	return best
}

func str(m *vici.Message, k string) string {
	s, _ := m.Get(k).(string)
	return s
}

func num(m *vici.Message, k string) uint64 {
	v, _ := strconv.ParseUint(str(m, k), 10, 64)
	return v
}

func list(m *vici.Message, k string) []string {
	l, _ := m.Get(k).([]string)
	return l
}

// Summary is one line for people: "up (ESTABLISHED/INSTALLED since 12:01:02, in 1.2 kB/10 pkts, out ...)".
func (e EndStatus) Summary() string {
	switch {
	case e.Error != "":
		return "unreachable: " + e.Error
	case !e.Loaded:
		return "cut (connection unloaded)"
	case e.IKEState == "":
		return "down (no IKE_SA)"
	}
	s := fmt.Sprintf("IKE %s, child %s", e.IKEState, text.OrDash(e.ChildState))
	if !e.Since.IsZero() {
		s += ", since " + e.Since.UTC().Format(time.TimeOnly)
	}
	return s + fmt.Sprintf(", in %d B/%d pkts, out %d B/%d pkts", e.BytesIn, e.PacketsIn, e.BytesOut, e.PacketsOut)
}
