// Package soak runs `sitectl drill soak`: a random schedule of faults (a partition
// of either spoke, cloud loss, node loss, database down, an API task killed), one
// at a time, each healed and verified before the next, then a final verification
// of everything written. The schedule is pure logic from a seed, so a failing
// schedule can be replayed exactly with the same --seed (and the same --faults and
// sites); the drills themselves are drill.Drill runs built by drill/live.
package soak

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// Kinds are the faults a soak picks from, in --faults' spelling.
var Kinds = []string{"partition", "cloud-loss", "node-loss", "db-down", "api-kill"}

// Targets are what each kind of fault can hit in the topology.
type Targets struct {
	// Spokes are the sites a partition cuts off (their links cut).
	Spokes []string
	// Hub is the site cloud-loss cuts from the others ("" : no cloud-loss).
	Hub string
	// Nodes are, per site, the worker nodes node-loss may drain.
	Nodes map[string][]string
	// DB are the sites running PostgreSQL as a swarm service (db-down).
	DB []string
	// API are the sites running the API (api-kill).
	API []string
}

// Step is one fault of the schedule.
type Step struct {
	N    int    `json:"n"` // 1-based
	Kind string `json:"kind"`
	Site string `json:"site,omitempty"`
	Node string `json:"node,omitempty"`
}

// String is "#3 node-loss douala/douala-db1".
func (s Step) String() string {
	out := fmt.Sprintf("#%d %s", s.N, s.Kind)
	switch {
	case s.Node != "":
		out += " " + s.Site + "/" + s.Node
	case s.Site != "":
		out += " " + s.Site
	}
	return out
}

// ParseFaults reads --faults: a comma-separated list of kinds; empty means all.
func ParseFaults(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return slices.Clone(Kinds), nil
	}
	var out []string
	for _, k := range strings.Split(list, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(Kinds, k) {
			return nil, fmt.Errorf("--faults lists %q, not a fault the soak knows; use a comma-separated list of %s", k, strings.Join(Kinds, ", "))
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// candidates are the steps of one kind the targets allow, in a fixed order.
func (t Targets) candidates(kind string) []Step {
	var out []Step
	switch kind {
	case "partition":
		for _, s := range sorted(t.Spokes) {
			out = append(out, Step{Kind: kind, Site: s})
		}
	case "cloud-loss":
		if t.Hub != "" {
			out = append(out, Step{Kind: kind})
		}
	case "node-loss":
		for _, s := range sortedKeys(t.Nodes) {
			for _, n := range sorted(t.Nodes[s]) {
				out = append(out, Step{Kind: kind, Site: s, Node: n})
			}
		}
	case "db-down":
		for _, s := range sorted(t.DB) {
			out = append(out, Step{Kind: kind, Site: s})
		}
	case "api-kill":
		for _, s := range sorted(t.API) {
			out = append(out, Step{Kind: kind, Site: s})
		}
	}
	return out
}

// Schedule draws n steps from seed: each step a kind among those given that has a
// target, then one of its targets, uniformly. The same seed, kinds and targets
// always give the same schedule (math/rand/v2's PCG, whose output is fixed).
func Schedule(seed uint64, kinds []string, t Targets, n int) ([]Step, error) {
	var usable []string
	var none []string
	for _, k := range kinds {
		if len(t.candidates(k)) > 0 {
			usable = append(usable, k)
		} else {
			none = append(none, k)
		}
	}
	if len(usable) == 0 {
		return nil, fmt.Errorf("--faults %s: no site offers a target for these faults (partition needs a spoke with a link, node-loss a worker node, db-down the postgres stack, api-kill the django-api stack); choose others", strings.Join(none, ","))
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed5eed5eed5eed))
	out := make([]Step, 0, n)
	for i := range n {
		c := t.candidates(usable[rng.IntN(len(usable))])
		s := c[rng.IntN(len(c))]
		s.N = i + 1
		out = append(out, s)
	}
	return out, nil
}

func sorted(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return out
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
