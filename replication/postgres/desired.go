// Package postgres replicates PostgreSQL data between the sites with logical
// replication, as docs/design.md decision 4 says: every row is owned by the site that
// wrote it; each spoke publishes its own rows to the hub, the hub republishes to each
// spoke the rows that spoke does not own. It turns the topology into desired
// publications and subscriptions (pure), reads the live catalogs of every site, diffs
// them into typed plan steps, applies them in a safe order, and reports the state of
// every replication flow.
package postgres

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// Prefix marks the publications, subscriptions and slots sitectl owns. Objects
// without it are never altered or dropped.
const Prefix = "sitectl_"

// Publish is the publication's operations. TRUNCATE is left out on purpose: a
// TRUNCATE at one site would empty every site's copy of rows other sites own.
const Publish = "insert, update, delete"

// Table is one replicated table with the row filter one publication applies to it.
type Table struct {
	Name   string `json:"table"`  // schema-qualified: public.orders
	Filter string `json:"filter"` // SQL over the owner column, without parentheses
}

// Publication is what a publishing site offers one subscriber.
type Publication struct {
	Site   string  `json:"site"`
	Name   string  `json:"name"`
	Flow   Flow    `json:"flow"`
	Tables []Table `json:"tables"`
	// Slot is the name of its subscriber's subscription and slot when it differs
	// from the publication's (a site of the flow was rebuilt: Flow.SlotName).
	Slot string `json:"slot,omitempty"`
}

// SlotName is the name of the subscription, and of its slot here, that consumes
// the publication.
func (p Publication) SlotName() string {
	if p.Slot != "" {
		return p.Slot
	}
	return p.Name
}

// Subscription is what a subscribing site pulls from one publisher. Its slot on the
// publisher has the subscription's name, which is unique per flow and generation
// (Flow.SlotName).
type Subscription struct {
	Site        string `json:"site"`
	Name        string `json:"name"`
	Flow        Flow   `json:"flow"`
	Publication string `json:"publication"`
	// Tables are the tables its publication carries (as desired), sorted.
	Tables []string `json:"tables"`
	// Conn says how the subscriber reaches the publisher; the password is read
	// from its secret reference only when a step is applied.
	Conn ConnInfo `json:"connection"`
}

// Flow is one replication flow (a copy of sites.Flow with its slot's name).
type Flow struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Filter string `json:"filter"`
}

// Name is the name of the flow's publication, subscription and slot:
// sitectl_<from>_to_<to>, unique on every site.
func (f Flow) Name() string { return Prefix + ident(f.From) + "_to_" + ident(f.To) }

// SlotName is the name of the flow's subscription and slot when its publisher is
// generation fromGen and its subscriber toGen (see site rebuild): the flow's name
// while neither was rebuilt, sitectl_<from>_to_<to>_g<fromGen>_<toGen> after. An
// old instance of a rebuilt site thus names, in its subscriptions, slots that no
// longer exist on its peers, and its peers' subscriptions name slots it never had:
// it cannot take a rebuilt site's changes, nor hand its own to a peer.
func (f Flow) SlotName(fromGen, toGen int64) string {
	if fromGen <= 0 && toGen <= 0 {
		return f.Name()
	}
	return fmt.Sprintf("%s_g%d_%d", f.Name(), max(fromGen, 0), max(toGen, 0))
}

// flowOfSlot reports whether name is one of the flow's subscription or slot
// names, of any generation.
func (f Flow) flowOfSlot(name string) bool {
	base := f.Name()
	if name == base {
		return true
	}
	rest, ok := strings.CutPrefix(name, base+"_g")
	return ok && genSuffix.MatchString(rest)
}

var genSuffix = regexp.MustCompile(`^[0-9]+_[0-9]+$`)

func (f Flow) String() string { return f.From + " → " + f.To }

// ConnInfo is a libpq connection string built from the publisher's config.
type ConnInfo struct {
	Host     string          `json:"host"`
	Port     int             `json:"port"`
	Database string          `json:"dbname"`
	User     string          `json:"user"`
	SSLMode  string          `json:"sslmode,omitempty"`
	Password sites.SecretRef `json:"password"`
	// PassFile, when set, is the libpq passfile the subscriber's server reads the
	// password from (the postgres stack's pgpass secret): the connection string
	// then carries passfile= and no password, so pg_subscription.subconninfo (and
	// the WAL of every site, where the catalog row travels) never holds it.
	PassFile string `json:"passfile,omitempty"`
}

// String is the connection string with the password reference in place of its
// value: safe to print.
func (c ConnInfo) String() string { return c.render("<" + c.Password.String() + ">") }

// Render is the connection string as the subscription stores it: with passfile=
// when PassFile is set, else with the password read from its reference (never
// print that one).
func (c ConnInfo) Render() (string, error) {
	if c.PassFile != "" {
		return c.render(""), nil
	}
	pw, err := c.Password.Resolve()
	if err != nil {
		return "", err
	}
	return c.render(string(pw)), nil
}

func (c ConnInfo) render(password string) string {
	parts := []string{
		"host=" + connValue(c.Host),
		"port=" + strconv.Itoa(c.Port),
		"dbname=" + connValue(c.Database),
		"user=" + connValue(c.User),
	}
	if c.PassFile != "" {
		parts = append(parts, "passfile="+connValue(c.PassFile))
	} else {
		parts = append(parts, "password="+connValue(password))
	}
	if c.SSLMode != "" {
		parts = append(parts, "sslmode="+connValue(c.SSLMode))
	}
	parts = append(parts, "connect_timeout=10")
	return strings.Join(parts, " ")
}

// Redact replaces the password in a libpq connection string (as stored in
// pg_subscription.subconninfo) with ***.
func Redact(conninfo string) string {
	conninfo = uriPasswordRE.ReplaceAllString(conninfo, "${1}***@")
	return passwordRE.ReplaceAllString(conninfo, "${1}***")
}

var (
	passwordRE = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	// the URI form, postgresql://user:password@host/db
	uriPasswordRE = regexp.MustCompile(`(postgres(?:ql)?://[^:@/\s]*:)\S*@`)
)

// connValue quotes a libpq keyword value: single quotes, backslash-escaped.
func connValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// Desired is the replication every site should have.
type Desired struct {
	Tables        []string                  `json:"tables"`
	Publications  map[string][]Publication  `json:"publications"`
	Subscriptions map[string][]Subscription `json:"subscriptions"`
}

// SiteNames lists the sites taking part in replication, sorted.
func (d *Desired) SiteNames() []string {
	seen := map[string]bool{}
	for s := range d.Publications {
		seen[s] = true
	}
	for s := range d.Subscriptions {
		seen[s] = true
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Build computes the desired publications and subscriptions from the topology's
// flows, for sites never rebuilt. It reads no secret and touches nothing.
func Build(topo *sites.Topology) (*Desired, error) { return BuildAt(topo, nil) }

// BuildAt is Build for sites of the given generations (site → generation; a site
// missing is generation 0): the subscriptions and slots of a flow between rebuilt
// sites carry their generations (Flow.SlotName).
func BuildAt(topo *sites.Topology, gens map[string]int64) (*Desired, error) {
	d := &Desired{Publications: map[string][]Publication{}, Subscriptions: map[string][]Subscription{}}
	for _, f := range topo.Flows {
		from, to := topo.Site(f.From), topo.Site(f.To)
		if from == nil || to == nil {
			return nil, fmt.Errorf("replication flow %s → %s names a site that is not in %s", f.From, f.To, topo.Dir)
		}
		fl := Flow{From: f.From, To: f.To, Filter: f.Filter}
		tables := QualifiedTables(from.Postgres.Tables)
		if d.Tables == nil {
			d.Tables = tables
		}
		slot := fl.SlotName(gens[f.From], gens[f.To])
		pub := Publication{Site: f.From, Name: fl.Name(), Flow: fl}
		if slot != pub.Name {
			pub.Slot = slot
		}
		for _, t := range tables {
			pub.Tables = append(pub.Tables, Table{Name: t, Filter: f.Filter})
		}
		d.Publications[f.From] = append(d.Publications[f.From], pub)
		host := from.Postgres.ReplicationHost
		if host == "" {
			host = from.Postgres.Host
		}
		d.Subscriptions[f.To] = append(d.Subscriptions[f.To], Subscription{
			Site: f.To, Name: slot, Flow: fl, Publication: fl.Name(), Tables: tables,
			Conn: ConnInfo{Host: host, Port: from.Postgres.Port, Database: from.Postgres.Database,
				User: from.Postgres.User, SSLMode: from.Postgres.SSLMode, Password: from.Postgres.Password,
				PassFile: PassFilePath(to)},
		})
	}
	for _, ps := range d.Publications {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	}
	for _, ss := range d.Subscriptions {
		sort.Slice(ss, func(i, j int) bool { return ss[i].Name < ss[j].Name })
	}
	return d, nil
}

// QualifiedTables returns the table names schema-qualified (public. when bare), sorted.
func QualifiedTables(tables []string) []string {
	out := make([]string, 0, len(tables))
	for _, t := range tables {
		if !strings.Contains(t, ".") {
			t = "public." + t
		}
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ident makes a site name usable in an object name: lower case, '-' → '_'.
func ident(site string) string { return strings.ReplaceAll(strings.ToLower(site), "-", "_") }

// Sync workers PostgreSQL 15 runs per subscription by default
// (max_sync_workers_per_subscription); each holds a temporary slot on the publisher
// and a replication origin on the subscriber while it copies a table.
const syncWorkers = 2

// ServerSettings returns the server settings a site's PostgreSQL needs for
// replication, sized to the topology: the stack passes them as `-c key=value`.
// Each publisher slot and sender has room for its subscription's table-sync workers,
// plus headroom for an operator's pg_basebackup or psql replication session.
func ServerSettings(topo *sites.Topology, site *sites.Site) map[string]string {
	out, in := 0, 0
	for _, f := range topo.Flows {
		if f.From == site.Name {
			out++
		}
		if f.To == site.Name {
			in++
		}
	}
	senders := atLeast(out*(1+syncWorkers)+4, 10)
	// On a subscriber, max_replication_slots also bounds replication origins.
	slots := atLeast(out*(1+syncWorkers)+in*(1+syncWorkers)+4, 10)
	workers := atLeast(in*(1+syncWorkers)+2, 6)
	keep := site.Postgres.MaxSlotWALKeepSize
	if keep == "" {
		keep = "2GB"
	}
	return map[string]string{
		"wal_level":                       "logical",
		"max_wal_senders":                 strconv.Itoa(senders),
		"max_replication_slots":           strconv.Itoa(slots),
		"max_logical_replication_workers": strconv.Itoa(workers),
		"max_worker_processes":            strconv.Itoa(workers + 6),
		"max_slot_wal_keep_size":          keep,
		"wal_sender_timeout":              "30s",
		"wal_receiver_timeout":            "30s",
		"wal_retrieve_retry_interval":     "2s",
		// A subscriber reports to its publisher every second, even when idle, so a
		// link that went silent shows as stalled within seconds (Classify), long
		// before the 30 s timeouts drop the connection.
		"wal_receiver_status_interval": "1s",
	}
}

// ServerArgs is ServerSettings as postgres command-line arguments, sorted:
// ["-c", "max_replication_slots=10", ...].
func ServerArgs(topo *sites.Topology, site *sites.Site) []string {
	s := ServerSettings(topo, site)
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, "-c", k+"="+s[k])
	}
	return args
}

func atLeast(v, floor int) int {
	if v < floor {
		return floor
	}
	return v
}

// ParseSize reads a PostgreSQL size setting ("2GB", "512MB", "1024kB", "-1") in bytes;
// -1 means unlimited. A bare number of max_slot_wal_keep_size is in MB.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return -1, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}}
	mult := int64(1 << 20)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: use -1 or a number with kB, MB, GB or TB", s)
	}
	return n * mult, nil
}
