// Package postgres is the PostgreSQL 15 stack: one server per site on the db node,
// its data on a volume, its password from a Docker secret, and the server settings
// logical replication between the sites needs.
package postgres

import (
	_ "embed"
	"fmt"
	"sort"

	pgrepl "github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
)

//go:embed compose.yaml.tmpl
var composeTemplate []byte

// Name is the stack's name (its folder and its namespace in the swarm).
const Name = "postgres"

// Defaults are the stack's values; a site overrides them under values.postgres.
var Defaults = map[string]any{
	// port is the host port published on the db node.
	"port": 5432,
	// constraint replaces the placement constraint (default: the db node).
	"constraint": "",
}

func init() { stacks.Register(Stack{}) }

// Stack renders the postgres stack.
type Stack struct{}

// Name is "postgres".
func (Stack) Name() string { return Name }

// Extra is what the template sees besides the values.
type Extra struct {
	Major       int
	Settings    []string
	Constraints []string
}

// Render renders the compose file for in.Site.
func (Stack) Render(in stacks.Input) (stacks.Rendered, error) {
	vals := stacks.Values(in, Name, Defaults)
	extra := Extra{Major: 15, Settings: ServerSettings(in.Topo, in.Site), Constraints: []string{Placement(in.Site, fmt.Sprint(vals["constraint"]))}}
	out, err := stacks.ExecTemplate("postgres/compose.yaml.tmpl", composeTemplate, stacks.TemplateData{
		Site: in.Site, Topo: in.Topo, Env: in.Env(), Stack: Name, Values: vals, Extra: extra,
	})
	if err != nil {
		return stacks.Rendered{}, err
	}
	return stacks.Rendered{Stack: Name, Compose: out}, nil
}

// ServerSettings are the `-c name=value` settings the server starts with: listening
// on the overlay and host port, plus what logical replication between the sites
// needs (replication/postgres.ServerSettings: senders, slots and workers sized from
// the replication flows, and max_slot_wal_keep_size so a long partition cannot fill
// the disk).
func ServerSettings(topo *sites.Topology, s *sites.Site) []string {
	out := []string{"listen_addresses=*"}
	set := pgrepl.ServerSettings(topo, s)
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+set[k])
	}
	return out
}

// Placement is the placement constraint of the server: the configured one, else the
// site's db node (node label role=db), else the role of the node whose address is
// postgres.host (single-node sites).
func Placement(s *sites.Site, override string) string {
	if override != "" && override != "<nil>" {
		return override
	}
	for _, n := range s.Nodes {
		if n.Labels["role"] == "db" {
			return "node.labels.role == db"
		}
	}
	for _, n := range s.Nodes {
		if n.Address == s.Postgres.Host && n.Labels["role"] != "" {
			return "node.labels.role == " + n.Labels["role"]
		}
	}
	return "node.role == manager"
}
