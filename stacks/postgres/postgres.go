// Package postgres is the PostgreSQL 15 stack: one server per site on the db node,
// its data on a volume, its password from a Docker secret, and the server settings
// logical replication between the sites needs.
package postgres

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"
	"time"

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
	// health_retry is how long one health check retries pg_isready (every 0.5 s)
	// while the server is starting: a server ready shortly after a check is healthy
	// at that check, not one interval (5 s) later. 0s: one try. The check's timeout
	// is health_retry + 3s: the window is for quick refusals (nothing listening yet,
	// "starting up"); a try that hangs (up to pg_isready's 2 s) uses it up sooner.
	"health_retry": "3s",
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
	// HealthTest is the healthcheck test (a JSON list) and HealthTimeout its timeout.
	HealthTest    string
	HealthTimeout string
	// PassFile is the pgpass secret's name when the server reads its
	// subscriptions' passwords from it ("" when it subscribes to nothing, or
	// postgres.passfile points elsewhere).
	PassFile string
	// PostgresUID owns the passfile (libpq ignores one others can read): the
	// postgres user of the image (999 in the official image and the lab's).
	PostgresUID int
}

// Render renders the compose file for in.Site.
func (Stack) Render(in stacks.Input) (stacks.Rendered, error) {
	if err := stacks.CheckValues(in, Name, Defaults); err != nil {
		return stacks.Rendered{}, err
	}
	vals := stacks.Values(in, Name, Defaults)
	extra := Extra{Major: 15, Settings: ServerSettings(in.Topo, in.Site), Constraints: []string{Placement(in.Site, fmt.Sprint(vals["constraint"]))}}
	retry, err := time.ParseDuration(fmt.Sprint(vals["health_retry"]))
	if err != nil || retry < 0 {
		return stacks.Rendered{}, fmt.Errorf("values.%s.health_retry is %v: want a duration such as 3s (0s: no retry)", Name, vals["health_retry"])
	}
	// Compose interpolates $ in the file (docker stack deploy's loader, and
	// sitectl's): $$ is a literal $.
	test := HealthTest(in.Site, retry)
	for i := range test {
		test[i] = strings.ReplaceAll(test[i], "$", "$$")
	}
	if extra.HealthTest, err = stacks.JSONList(test); err != nil {
		return stacks.Rendered{}, err
	}
	extra.HealthTimeout = (retry + 3*time.Second).String()
	passFiles := map[string][]stacks.PassFileLine{}
	if pgrepl.PassFilePath(in.Site) == pgrepl.PassFileTarget {
		lines, err := pgrepl.PassLines(in.Topo, in.Site)
		if err != nil {
			return stacks.Rendered{}, err
		}
		if len(lines) > 0 {
			extra.PassFile, extra.PostgresUID = pgrepl.PassFileSecret, 999
			passFiles[pgrepl.PassFileSecret] = lines
		}
	}
	out, err := stacks.ExecTemplate("postgres/compose.yaml.tmpl", composeTemplate, stacks.TemplateData{
		Site: in.Site, Topo: in.Topo, Env: in.Env(), Stack: Name, Values: vals, Extra: extra,
	})
	if err != nil {
		return stacks.Rendered{}, err
	}
	return stacks.Rendered{Stack: Name, Compose: out, PassFiles: passFiles}, nil
}

// HealthTest is the server's health check as it runs: pg_isready on its own host,
// tried every 0.5 s for retry (a dash loop, the arguments passed to it as "$@",
// never into the script; a missing sleep fails the check instead of spinning); one
// try when retry is under 0.5 s.
func HealthTest(s *sites.Site, retry time.Duration) []string {
	args := []string{"-q", "-t", "2", "-h", "127.0.0.1", "-U", s.Postgres.User, "-d", s.Postgres.Database}
	tries := int(retry/(500*time.Millisecond)) + 1
	if tries < 2 {
		return append([]string{"CMD", "pg_isready"}, args...)
	}
	script := fmt.Sprintf(`i=1; until pg_isready "$@"; do [ "$i" -ge %d ] && exit 1; i=$((i+1)); sleep 0.5 || exit 1; done`, tries)
	return append([]string{"CMD", "sh", "-c", script, "pg-ready"}, args...)
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
