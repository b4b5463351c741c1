package sites

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// Topology is the validated configuration of all sites in one environment: the
// sites, the hub, the tunnel links and the replication flows between them.
type Topology struct {
	Env      string   `json:"environment"`
	Dir      string   `json:"config_dir"`
	Hub      string   `json:"hub"`
	Sites    []*Site  `json:"sites"`
	Links    []Link   `json:"links"`
	Flows    []Flow   `json:"replication"`
	Warnings Problems `json:"warnings,omitempty"`
	// Apps are the operator's apps (package apps loads them), sorted by name.
	Apps []*App `json:"apps,omitempty"`

	origins map[string]map[string]string
	shared  map[string]bool // origins every site shares (defaults, env (all), SITECTL_X, --set k=v)
}

// Shared reports whether origin (as Origin returns it) is a layer every site
// shares: a problem there is reported once, not per site.
func (t *Topology) Shared(origin string) bool { return t.shared[origin] }

// Link is one IPsec tunnel between two sites. A is the spoke and B the hub for
// hub links; for direct links A < B alphabetically.
type Link struct {
	A      string `json:"a"`
	B      string `json:"b"`
	Direct bool   `json:"direct"` // a spoke-to-spoke link
}

// Name is the link's name used on the command line and in tunnel config:
// "douala-cloud", "douala-yaounde".
func (l Link) Name() string { return l.A + "-" + l.B }

// Has reports whether site is an end of the link.
func (l Link) Has(site string) bool { return l.A == site || l.B == site }

// Other returns the far end of the link seen from site.
func (l Link) Other(site string) string {
	if l.A == site {
		return l.B
	}
	return l.A
}

// Flow is one PostgreSQL replication flow: To subscribes to From's publication of
// the rows Filter selects. Spokes publish their own rows to the hub; the hub
// republishes to each spoke every row that spoke does not own.
type Flow struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Filter string `json:"filter"` // SQL row filter over the owner column `site`
}

// Site returns the named site, or nil.
func (t *Topology) Site(name string) *Site {
	for _, s := range t.Sites {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// SiteNames lists the sites, sorted.
func (t *Topology) SiteNames() []string {
	out := make([]string, len(t.Sites))
	for i, s := range t.Sites {
		out[i] = s.Name
	}
	return out
}

// HubSite returns the hub.
func (t *Topology) HubSite() *Site { return t.Site(t.Hub) }

// Spokes returns every site but the hub, sorted.
func (t *Topology) Spokes() []*Site {
	var out []*Site
	for _, s := range t.Sites {
		if !s.IsHub() {
			out = append(out, s)
		}
	}
	return out
}

// LinksOf returns the links with site at one end.
func (t *Topology) LinksOf(site string) []Link {
	var out []Link
	for _, l := range t.Links {
		if l.Has(site) {
			out = append(out, l)
		}
	}
	return out
}

// Link finds a link by name, accepting either order ("cloud-douala" = "douala-cloud").
func (t *Topology) Link(name string) (Link, error) {
	for _, l := range t.Links {
		if l.Name() == name || l.B+"-"+l.A == name {
			return l, nil
		}
	}
	names := make([]string, len(t.Links))
	for i, l := range t.Links {
		names[i] = l.Name()
	}
	return Link{}, fmt.Errorf("no link %q (links: %s)", name, strings.Join(names, ", "))
}

// Select returns the named sites, or all sites when names is empty; an unknown name is
// an error that lists the known ones.
func (t *Topology) Select(names ...string) ([]*Site, error) {
	if len(names) == 0 {
		return t.Sites, nil
	}
	var out []*Site
	for _, n := range names {
		s := t.Site(n)
		if s == nil {
			return nil, fmt.Errorf("no site %q in %s (sites: %s)", n, t.Dir, strings.Join(t.SiteNames(), ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

// Origin names the file (or variable, or flag) that set key for site: where an
// operator goes to change it.
func (t *Topology) Origin(site, key string) string {
	return origin(t.origins[site], key, filepath.Join(t.Dir, site+".yaml"))
}

// build derives the hub, links and flows from the validated sites.
func (t *Topology) build() {
	sort.Slice(t.Sites, func(i, j int) bool { return t.Sites[i].Name < t.Sites[j].Name })
	for _, s := range t.Sites {
		if s.IsHub() {
			t.Hub = s.Name
		}
	}
	seen := map[string]bool{}
	add := func(a, b string) {
		l := Link{A: a, B: b}
		switch {
		case b == t.Hub:
		case a == t.Hub:
			l.A, l.B = b, a
		default:
			l.Direct = true
			if a > b {
				l.A, l.B = b, a
			}
		}
		if !seen[l.Name()] {
			seen[l.Name()] = true
			t.Links = append(t.Links, l)
		}
	}
	for _, s := range t.Sites {
		for _, p := range s.Tunnel.Peers {
			add(s.Name, p)
		}
	}
	sort.Slice(t.Links, func(i, j int) bool {
		if t.Links[i].Direct != t.Links[j].Direct {
			return !t.Links[i].Direct
		}
		return t.Links[i].Name() < t.Links[j].Name()
	})
	var pg []*Site
	for _, s := range t.Sites {
		if s.HasStack("postgres") {
			pg = append(pg, s)
		}
	}
	hub := t.HubSite()
	if hub == nil || !hub.HasStack("postgres") {
		return
	}
	for _, s := range pg {
		if s.IsHub() {
			continue
		}
		t.Flows = append(t.Flows,
			Flow{From: s.Name, To: t.Hub, Filter: fmt.Sprintf("site = '%s'", s.Name)},
			Flow{From: t.Hub, To: s.Name, Filter: fmt.Sprintf("site <> '%s'", s.Name)})
	}
}
