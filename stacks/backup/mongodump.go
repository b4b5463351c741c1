package backup

import (
	"cmp"
	_ "embed"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks"
	mtargets "github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// mongodumpScript is the mongodump service's loop (files["mongodump.sh"]).
//
//go:embed mongodump.sh
var mongodumpScript []byte

// MongodumpPasswordSecret is the Docker secret holding mongo.user's password.
const MongodumpPasswordSecret = "mongodump-password"

// Mongodump is the hub's scheduled mongodump as the template sees it.
type Mongodump struct {
	Image, URI, User, Member, Constraint, Volume string
	EverySeconds, Keep                           int
}

// buildMongodump renders values.backup.mongodump: at the hub only, a dump every
// mongodump_every of the hub's hidden member (direct connection), else of the
// hub's lowest-priority member read as a secondary (never the primary: the dump
// fails while that member is primary). Nil when not asked for.
func buildMongodump(in stacks.Input, vals map[string]any) (*Mongodump, error) {
	switch v := fmt.Sprint(vals["mongodump"]); v {
	case "true":
	case "false", "<nil>", "":
		return nil, nil
	default:
		return nil, fmt.Errorf("site %s: values.backup.mongodump is %q: allowed: true, false", in.Site.Name, v)
	}
	s := in.Site
	fail := func(format string, args ...any) (*Mongodump, error) {
		return nil, fmt.Errorf("site %s: values.backup.mongodump: "+format, append([]any{s.Name}, args...)...)
	}
	if in.Topo.Hub != s.Name {
		return fail("the dump is taken at the hub (%s), from a member there; set it in the hub's values, not %s's", in.Topo.Hub, s.Name)
	}
	member, err := dumpMember(s.Mongo.Members)
	if err != nil {
		return fail("%v", err)
	}
	if s.Mongo.User == "" || s.Mongo.Password.IsZero() {
		return fail("mongodump authenticates as mongo.user with mongo.password; set both at %s", s.Name)
	}
	every, err := time.ParseDuration(fmt.Sprint(vals["mongodump_every"]))
	if err != nil || every < time.Hour {
		return fail("values.backup.mongodump_every is %q: give a duration of at least 1h (24h: once a day)", vals["mongodump_every"])
	}
	keep, err := strconv.Atoi(fmt.Sprint(vals["mongodump_keep"]))
	if err != nil || keep < 1 {
		return fail("values.backup.mongodump_keep is %q: give how many dumps to keep, at least 1", vals["mongodump_keep"])
	}
	image := s.Images["mongo-tools"]
	if image == "" {
		image = s.Images["mongo"]
	}
	if image == "" {
		return fail("no image with mongodump: set images.mongo-tools (or images.mongo, whose image holds the database tools)")
	}
	q := url.Values{"directConnection": {"true"}, "readPreference": {"secondary"}, "authSource": {"admin"}}
	host, _, err := net.SplitHostPort(member.Host)
	if err != nil {
		return fail("mongo.members host %q is not host:port", member.Host)
	}
	return &Mongodump{Image: image, URI: "mongodb://" + member.Host + "/?" + q.Encode(), User: s.Mongo.User, Member: member.Host,
		Constraint: mtargets.HostnameConstraint(mtargets.Pin(s, "db", host)), Volume: fmt.Sprint(vals["mongodump_volume"]),
		EverySeconds: int(every.Seconds()), Keep: keep}, nil
}

// dumpMember is the hub's hidden member, else its data-bearing member of lowest
// priority when it has two or more (one of them is a secondary).
func dumpMember(members []sites.MongoMember) (sites.MongoMember, error) {
	var data []sites.MongoMember
	for _, m := range members {
		if m.Hidden && !m.Arbiter {
			return m, nil
		}
		if !m.Arbiter {
			data = append(data, m)
		}
	}
	if len(data) < 2 {
		return sites.MongoMember{}, fmt.Errorf("the hub has no hidden member and %d data-bearing member(s): a dump would read the primary; add a hidden member at the hub (mongo.members: - host: HOST:27017, hidden: true, priority: 0)", len(data))
	}
	return slices.MinFunc(data, func(a, b sites.MongoMember) int { return cmp.Compare(priority(a), priority(b)) }), nil
}

func priority(m sites.MongoMember) float64 {
	if m.Priority != nil {
		return *m.Priority
	}
	return 1
}
