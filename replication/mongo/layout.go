// Package mongo runs the one MongoDB replica set that spans the sites, as docs/design.md
// decision 5 says: members laid out from the site configs (cloud at the highest
// priority, no arbiter unless allowed), the default write concern set to majority,
// reconfigs of at most one voting change each (never forced, except through
// DeclareAuthoritative and a site rebuild with no primary reachable, behind the same
// guard), a partition analysis of which sites can still elect a
// primary when a tunnel is cut, and a status with lag and the oplog window.
//
// A cut-off minority does not promote itself: a replica set elects a primary only
// where a majority of the votes is. Writes a cut-off primary took without a majority
// are rolled back after the heal (into rollback/ files), not merged.
package mongo

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/sites"
)

// TagSite is the member tag that names the site a member is placed at.
const TagSite = "site"

// Member is one replica set member as sitectl wants it (or as it is, when read live).
type Member struct {
	ID                 int               `bson:"_id" json:"id"`
	Host               string            `bson:"host" json:"host"`
	ArbiterOnly        bool              `bson:"arbiterOnly" json:"arbiter_only,omitempty"`
	BuildIndexes       *bool             `bson:"buildIndexes,omitempty" json:"-"`
	Hidden             bool              `bson:"hidden" json:"hidden,omitempty"`
	Priority           float64           `bson:"priority" json:"priority"`
	Tags               map[string]string `bson:"tags,omitempty" json:"tags,omitempty"`
	SecondaryDelaySecs int64             `bson:"secondaryDelaySecs" json:"secondary_delay_secs,omitempty"`
	Votes              int               `bson:"votes" json:"votes"`
}

// Site returns the site the member's tags place it at ("" when untagged).
func (m Member) Site() string { return m.Tags[TagSite] }

// Voting reports whether the member votes.
func (m Member) Voting() bool { return m.Votes > 0 }

// Electable reports whether the member can become primary.
func (m Member) Electable() bool {
	return m.Votes > 0 && m.Priority > 0 && !m.ArbiterOnly && !m.Hidden
}

// DataBearing reports whether the member holds data (arbiters do not).
func (m Member) DataBearing() bool { return !m.ArbiterOnly }

// Config is a replica set configuration: the desired one built from the topology,
// or the live one read with replSetGetConfig.
type Config struct {
	Name    string   `bson:"_id" json:"replica_set"`
	Version int64    `bson:"version" json:"version,omitempty"`
	Term    int64    `bson:"term,omitempty" json:"term,omitempty"`
	Members []Member `bson:"members" json:"members"`
	// Settings is carried over untouched from the live config.
	Settings bson.Raw `bson:"settings,omitempty" json:"-"`
	// ProtocolVersion is carried over (1 on every supported server).
	ProtocolVersion int64 `bson:"protocolVersion,omitempty" json:"-"`
	// WriteConcernMajorityJournalDefault is carried over from the live config.
	WriteConcernMajorityJournalDefault *bool `bson:"writeConcernMajorityJournalDefault,omitempty" json:"-"`
}

// Member returns the member with that host, or nil.
func (c *Config) Member(host string) *Member {
	for i := range c.Members {
		if c.Members[i].Host == host {
			return &c.Members[i]
		}
	}
	return nil
}

// Voters is the number of voting members.
func (c *Config) Voters() int {
	n := 0
	for _, m := range c.Members {
		if m.Voting() {
			n++
		}
	}
	return n
}

// Majority is the number of votes an election needs.
func (c *Config) Majority() int { return c.Voters()/2 + 1 }

// WriteMajority is how many data-bearing voting members must acknowledge a
// w:majority write: the voting majority, capped at the data-bearing voters (an
// arbiter votes but never acknowledges a write).
func (c *Config) WriteMajority() int { return min(c.Majority(), c.DataVoters()) }

// DataVoters is the number of voting members that hold data.
func (c *Config) DataVoters() int {
	n := 0
	for _, m := range c.Members {
		if m.Voting() && m.DataBearing() {
			n++
		}
	}
	return n
}

// Clone returns a deep copy.
func (c *Config) Clone() *Config {
	out := *c
	out.Members = make([]Member, len(c.Members))
	for i, m := range c.Members {
		m.Tags = maps.Clone(m.Tags)
		out.Members[i] = m
	}
	out.Settings = slices.Clone(c.Settings)
	return &out
}

// Default priorities when a member's config does not set one.
const (
	HubPriority   = 2
	SpokePriority = 1
)

// Build builds the replica set configuration the topology asks for: every member
// of every site running the mongo stack, in site order, tagged with its site. IDs
// are 0..n-1; Reconcile renumbers new members against the live config.
func Build(topo *sites.Topology) (*Config, error) {
	cfg := &Config{}
	for _, s := range topo.Sites {
		if !s.HasStack("mongo") {
			continue
		}
		if cfg.Name == "" {
			cfg.Name = s.Mongo.ReplicaSet
		}
		for _, mm := range s.Mongo.Members {
			cfg.Members = append(cfg.Members, member(s, mm, len(cfg.Members)))
		}
	}
	if len(cfg.Members) == 0 {
		return nil, fmt.Errorf("no site runs the mongo stack with members: list mongo.members in a site config")
	}
	return cfg, nil
}

func member(s *sites.Site, mm sites.MongoMember, id int) Member {
	m := Member{
		ID:                 id,
		Host:               mm.Host,
		ArbiterOnly:        mm.Arbiter,
		Hidden:             mm.Hidden,
		SecondaryDelaySecs: int64(mm.Delay.D().Seconds()),
		Votes:              mm.VotesOrDefault(),
	}
	switch {
	case mm.Priority != nil:
		m.Priority = *mm.Priority
	case mm.Hidden || mm.Delay > 0 || mm.Arbiter || m.Votes == 0:
		m.Priority = 0
	case s.IsHub():
		m.Priority = HubPriority
	default:
		m.Priority = SpokePriority
	}
	if !mm.Arbiter {
		m.Tags = map[string]string{TagSite: s.Name}
	}
	return m
}

// SiteOf returns the site a member host is configured at ("" if none).
func SiteOf(topo *sites.Topology, host string) string {
	for _, s := range topo.Sites {
		for _, m := range s.Mongo.Members {
			if m.Host == host {
				return s.Name
			}
		}
	}
	return ""
}

// Hosts lists every configured member host, in site order.
func Hosts(topo *sites.Topology) []string {
	var out []string
	for _, s := range topo.Sites {
		if !s.HasStack("mongo") {
			continue
		}
		for _, m := range s.Mongo.Members {
			out = append(out, m.Host)
		}
	}
	return out
}

// Initiator is the site whose deploy initiates a new replica set (with its own
// members; every other site then adds its members one voting change at a time):
// the hub when it runs members, else the site of the highest-priority member.
func Initiator(topo *sites.Topology) string {
	cfg, err := Build(topo)
	if err != nil {
		return ""
	}
	if hub := topo.HubSite(); hub != nil && hub.HasStack("mongo") && len(hub.Mongo.Members) > 0 {
		return hub.Name
	}
	ms := slices.Clone(cfg.Members)
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Priority > ms[j].Priority })
	for _, m := range ms {
		if m.Electable() {
			return m.Site()
		}
	}
	return ms[0].Site()
}
