package mongo

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/sitectl/sitectl/sites"
)

// The two facts docs/design.md decision 5 makes sitectl say wherever partitions are shown.
const (
	NoSelfPromotion  = "A cut-off minority does not promote itself: a primary is elected only where a majority of the votes is; sites without one become read-only until the link returns."
	RollbackNotMerge = "Writes a cut-off primary took without a majority are rolled back after the heal (saved to rollback/ files on that member), not merged. With the default write concern majority, such writes are never acknowledged."
)

// Scenario is what one failure does to the replica set.
type Scenario struct {
	Name string   `json:"scenario"`
	Cut  []string `json:"cut_links,omitempty"`
	Lost []string `json:"lost_sites,omitempty"`
	// Sides are the groups of surviving sites that still reach each other.
	Sides [][]string `json:"sides"`
	// Primary is the site where a primary is elected; "" when no side has a majority.
	// Candidates lists every site that could win when priorities tie.
	Primary    string   `json:"primary_site,omitempty"`
	Candidates []string `json:"candidates,omitempty"`
	// Writable are the sites whose applications can take majority writes.
	Writable []string `json:"writable"`
	// ReadOnly are the sites that reach a member but no primary (or a primary that
	// cannot gather a write majority).
	ReadOnly []string `json:"read_only"`
	// Unavailable are the sites lost, or reaching no member at all.
	Unavailable []string `json:"unavailable,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// Analysis is the partition analysis of the replica set over the tunnel topology.
type Analysis struct {
	ReplicaSet    string         `json:"replica_set"`
	Voters        int            `json:"voters"`
	Majority      int            `json:"election_majority"`
	WriteMajority int            `json:"write_majority"`
	Votes         map[string]int `json:"votes_by_site"`
	Scenarios     []Scenario     `json:"scenarios"`
	Notes         []string       `json:"notes"`
}

// Analyze works out, for the topology as it is, then for every single tunnel cut,
// then for the hub lost, which sites can elect a primary and take majority writes.
// Traffic between sites follows the tunnels as routed: a direct link when the two
// sites have one (and only it), otherwise through the hub.
func Analyze(topo *sites.Topology) (*Analysis, error) {
	cfg, err := Build(topo)
	if err != nil {
		return nil, err
	}
	a := &Analysis{ReplicaSet: cfg.Name, Voters: cfg.Voters(), Majority: cfg.Majority(), WriteMajority: cfg.WriteMajority(), Votes: map[string]int{}}
	for _, m := range cfg.Members {
		a.Votes[SiteOfMember(topo, m)] += m.Votes
	}
	a.Scenarios = append(a.Scenarios, Simulate(topo, cfg, "all links up", nil, nil))
	for _, l := range topo.Links {
		a.Scenarios = append(a.Scenarios, Simulate(topo, cfg, "link "+l.Name()+" cut", []sites.Link{l}, nil))
	}
	if topo.Hub != "" {
		a.Scenarios = append(a.Scenarios, Simulate(topo, cfg, topo.Hub+" lost", nil, []string{topo.Hub}))
	}
	a.Notes = []string{NoSelfPromotion, RollbackNotMerge}
	if hubLost := a.Scenarios[len(a.Scenarios)-1]; topo.Hub != "" && hubLost.Primary == "" && len(hubLost.Candidates) == 0 {
		spokes, votes := []string{}, 0
		for _, s := range topo.Spokes() {
			spokes = append(spokes, s.Name)
			votes += a.Votes[s.Name]
		}
		if votes >= a.Majority && len(hubLost.Sides) > 1 {
			a.Notes = append(a.Notes, fmt.Sprintf("Without %s the spokes hold %d of %d votes but cannot reach each other: only a direct tunnel between %s (tunnel.peers) lets them elect a primary when %s is lost.", topo.Hub, votes, a.Voters, strings.Join(spokes, " and "), topo.Hub))
		}
	}
	return a, nil
}

// Simulate works out one scenario: the links in cut are down and the sites in lost
// are gone (members and gateway).
func Simulate(topo *sites.Topology, cfg *Config, name string, cut []sites.Link, lost []string) Scenario {
	sc := Scenario{Name: name, Lost: lost, Writable: []string{}, ReadOnly: []string{}}
	for _, l := range cut {
		sc.Cut = append(sc.Cut, l.Name())
	}
	r := reach{topo: topo, cut: cut, lost: lost}
	alive := []string{}
	for _, s := range topo.Sites {
		if !slices.Contains(lost, s.Name) {
			alive = append(alive, s.Name)
		}
	}
	sc.Sides = r.sides(alive)

	type cand struct {
		site     string
		priority float64
	}
	var cands []cand
	for _, m := range cfg.Members {
		site := SiteOfMember(topo, m)
		if !m.Electable() || slices.Contains(lost, site) {
			continue
		}
		votes := 0
		for _, o := range cfg.Members {
			if r.ok(site, SiteOfMember(topo, o)) {
				votes += o.Votes
			}
		}
		if votes >= cfg.Majority() {
			cands = append(cands, cand{site, m.Priority})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].priority > cands[j].priority })
	if len(cands) > 0 {
		top := cands[0]
		for _, c := range cands {
			if c.priority == top.priority && !slices.Contains(sc.Candidates, c.site) {
				sc.Candidates = append(sc.Candidates, c.site)
			}
		}
		if len(sc.Candidates) == 1 {
			sc.Primary, sc.Candidates = top.site, nil
		}
	}
	primary := sc.Primary
	if primary == "" && len(sc.Candidates) > 0 {
		primary = sc.Candidates[0]
	}
	canWrite := false
	if primary != "" {
		acks := 0
		for _, m := range cfg.Members {
			if m.Voting() && m.DataBearing() && r.ok(primary, SiteOfMember(topo, m)) {
				acks++
			}
		}
		canWrite = acks >= cfg.WriteMajority()
		if !canWrite {
			sc.Notes = append(sc.Notes, fmt.Sprintf("a primary is elected at %s but only %d of the %d data-bearing members a majority write needs are reachable: writes block until the link returns", primary, acks, cfg.WriteMajority()))
		}
	}
	for _, site := range alive {
		reachesMember := false
		for _, m := range cfg.Members {
			if m.DataBearing() && r.ok(site, SiteOfMember(topo, m)) {
				reachesMember = true
			}
		}
		switch {
		case canWrite && r.ok(site, primary):
			sc.Writable = append(sc.Writable, site)
		case reachesMember:
			sc.ReadOnly = append(sc.ReadOnly, site)
			if canWrite && r.sameSide(sc.Sides, site, primary) {
				sc.Notes = append(sc.Notes, fmt.Sprintf("%s still reaches sites that reach the primary at %s, but not %s itself: tunnels carry no traffic through a spoke, so %s is read-only", site, primary, primary, site))
			}
		default:
			sc.Unavailable = append(sc.Unavailable, site)
		}
	}
	sc.Unavailable = append(sc.Unavailable, lost...)
	if primary == "" && len(sc.ReadOnly) > 0 {
		sc.Notes = append(sc.Notes, "no side holds a majority of the votes: no primary anywhere, no site can write")
	}
	return sc
}

// reach says whether two sites' LANs reach each other through the tunnels.
type reach struct {
	topo *sites.Topology
	cut  []sites.Link
	lost []string
}

func (r reach) up(a, b string) (exists, up bool) {
	for _, l := range r.topo.Links {
		if l.Has(a) && l.Has(b) {
			return true, !slices.ContainsFunc(r.cut, func(c sites.Link) bool { return c.Name() == l.Name() })
		}
	}
	return false, false
}

func (r reach) ok(a, b string) bool {
	if a == "" || b == "" || slices.Contains(r.lost, a) || slices.Contains(r.lost, b) {
		return false
	}
	if a == b {
		return true
	}
	if exists, up := r.up(a, b); exists {
		return up
	}
	hub := r.topo.Hub
	if hub == "" || a == hub || b == hub || slices.Contains(r.lost, hub) {
		return false
	}
	_, ua := r.up(a, hub)
	_, ub := r.up(b, hub)
	return ua && ub
}

func (r reach) sameSide(sides [][]string, a, b string) bool {
	for _, side := range sides {
		if slices.Contains(side, a) && slices.Contains(side, b) {
			return true
		}
	}
	return false
}

func (r reach) sides(alive []string) [][]string {
	group := map[string]int{}
	var out [][]string
	for _, s := range alive {
		if _, done := group[s]; done {
			continue
		}
		idx := len(out)
		out = append(out, nil)
		queue := []string{s}
		group[s] = idx
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			out[idx] = append(out[idx], x)
			for _, y := range alive {
				if _, done := group[y]; !done && r.ok(x, y) {
					group[y] = idx
					queue = append(queue, y)
				}
			}
		}
		sort.Strings(out[idx])
	}
	return out
}

// Render prints the analysis as a table followed by its notes.
func (a *Analysis) Render(w io.Writer) error {
	var b strings.Builder
	votes := make([]string, 0, len(a.Votes))
	for _, s := range slices.Sorted(maps.Keys(a.Votes)) {
		votes = append(votes, fmt.Sprintf("%s %d", s, a.Votes[s]))
	}
	fmt.Fprintf(&b, "MongoDB replica set %s: %d voting members (%s); an election needs %d votes, a majority write %d data-bearing members.\n\n",
		a.ReplicaSet, a.Voters, strings.Join(votes, ", "), a.Majority, a.WriteMajority)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tSIDES\tPRIMARY\tMAJORITY WRITES\tREAD-ONLY\tUNAVAILABLE")
	for _, sc := range a.Scenarios {
		sides := make([]string, len(sc.Sides))
		for i, s := range sc.Sides {
			sides[i] = strings.Join(s, "+")
		}
		primary := sc.Primary
		if len(sc.Candidates) > 0 {
			primary = strings.Join(sc.Candidates, " or ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sc.Name, strings.Join(sides, " | "), dash(primary), dash(strings.Join(sc.Writable, ", ")), dash(strings.Join(sc.ReadOnly, ", ")), dash(strings.Join(sc.Unavailable, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, sc := range a.Scenarios {
		for _, n := range sc.Notes {
			fmt.Fprintf(&b, "  %s: %s\n", sc.Name, n)
		}
	}
	b.WriteString("\n")
	for _, n := range a.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// PlanNotes are the lines `sitectl plan` shows under the mongo part: one per
// scenario that leaves a site without majority writes, and the two design facts.
func (a *Analysis) PlanNotes() []string {
	var out []string
	for _, sc := range a.Scenarios {
		if len(sc.ReadOnly) == 0 && len(sc.Unavailable) == len(sc.Lost) {
			continue
		}
		who := "no primary"
		if sc.Primary != "" {
			who = "primary at " + sc.Primary
		} else if len(sc.Candidates) > 0 {
			who = "primary at " + strings.Join(sc.Candidates, " or ")
		}
		out = append(out, fmt.Sprintf("mongo: %s: %s; read-only: %s", sc.Name, who, dash(strings.Join(append(slices.Clone(sc.ReadOnly), notIn(sc.Unavailable, sc.Lost)...), ", "))))
	}
	return append(out, a.Notes...)
}

func notIn(xs, ys []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(ys, x) {
			out = append(out, x)
		}
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
