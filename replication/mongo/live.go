package mongo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// MemberView is what one member says about itself (hello).
type MemberView struct {
	Host      string `json:"host"`
	Site      string `json:"site,omitempty"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	SetName   string `json:"set_name,omitempty"`
	Primary   bool   `json:"primary"`
	Secondary bool   `json:"secondary"`
	// SeesPrimary is the primary this member knows of.
	SeesPrimary string `json:"sees_primary,omitempty"`
	SetVersion  int64  `json:"set_version,omitempty"`
}

type helloReply struct {
	IsWritablePrimary bool   `bson:"isWritablePrimary"`
	Secondary         bool   `bson:"secondary"`
	SetName           string `bson:"setName"`
	SetVersion        int64  `bson:"setVersion"`
	Primary           string `bson:"primary"`
}

// helloTimeout bounds a probe: a member that does not answer hello in this time is
// reported unreachable rather than holding up every command.
const helloTimeout = 3 * time.Second

// Hello asks one member what it is.
func (c *Conn) Hello(ctx context.Context, host string) MemberView {
	v := MemberView{Host: host, Site: SiteOf(c.topo, host)}
	ctx, cancel := context.WithTimeout(ctx, min(c.Timeout, helloTimeout))
	defer cancel()
	// A member whose address refuses connections (its stack not deployed yet) is
	// unreachable now: the driver would retry it until the whole timeout passed.
	if err := c.dial(ctx, host); err != nil {
		v.Error = "unreachable: " + err.Error()
		return v
	}
	var r helloReply
	if err := c.Run(ctx, host, bson.D{{Key: "hello", Value: 1}}, &r); err != nil {
		v.Error = shortError(err)
		return v
	}
	v.Reachable, v.SetName, v.Primary, v.Secondary, v.SeesPrimary, v.SetVersion = true, r.SetName, r.IsWritablePrimary, r.Secondary, r.Primary, r.SetVersion
	return v
}

// Live is the replica set as the members report it.
type Live struct {
	Initiated bool         `json:"initiated"`
	Members   []MemberView `json:"members"`
	Primary   string       `json:"primary,omitempty"`
	// Config is the primary's config, else the newest any member holds.
	Config *Config `json:"config,omitempty"`
	// DefaultWC is the cluster-wide default write concern's w ("majority", "1"),
	// and DefaultWCSource where it comes from: "global" when set, "implicit" when not.
	DefaultWC       string `json:"default_write_concern,omitempty"`
	DefaultWCSource string `json:"default_write_concern_source,omitempty"`
}

// Reachable lists the members that answered.
func (l *Live) Reachable() []string {
	var out []string
	for _, m := range l.Members {
		if m.Reachable {
			out = append(out, m.Host)
		}
	}
	return out
}

// MajorityDefault reports whether the default write concern is set to majority.
func (l *Live) MajorityDefault() bool {
	return l.DefaultWC == "majority" && l.DefaultWCSource == "global"
}

type configReply struct {
	Config           Config `bson:"config"`
	CommitmentStatus *bool  `bson:"commitmentStatus"`
}

// GetConfig reads one member's replica set config.
func (c *Conn) GetConfig(ctx context.Context, host string) (*Config, error) {
	var r configReply
	if err := c.Run(ctx, host, bson.D{{Key: "replSetGetConfig", Value: 1}}, &r); err != nil {
		return nil, err
	}
	return &r.Config, nil
}

// Committed reports whether the primary's current config is committed (a majority
// of voting members hold it).
func (c *Conn) Committed(ctx context.Context, primary string) (bool, error) {
	var r configReply
	if err := c.Run(ctx, primary, bson.D{{Key: "replSetGetConfig", Value: 1}, {Key: "commitmentStatus", Value: true}}, &r); err != nil {
		return false, err
	}
	return r.CommitmentStatus != nil && *r.CommitmentStatus, nil
}

type defaultRWReply struct {
	DefaultWriteConcern struct {
		W any `bson:"w"`
	} `bson:"defaultWriteConcern"`
	DefaultWriteConcernSource string `bson:"defaultWriteConcernSource"`
}

// DefaultWriteConcern reads the cluster-wide default write concern from a member.
func (c *Conn) DefaultWriteConcern(ctx context.Context, host string) (w, source string, err error) {
	var r defaultRWReply
	if err := c.Run(ctx, host, bson.D{{Key: "getDefaultRWConcern", Value: 1}}, &r); err != nil {
		return "", "", err
	}
	return fmt.Sprint(r.DefaultWriteConcern.W), r.DefaultWriteConcernSource, nil
}

// SetMajorityDefault sets the cluster-wide default write concern to majority (on
// the primary).
func (c *Conn) SetMajorityDefault(ctx context.Context, primary string) error {
	return c.Run(ctx, primary, bson.D{
		{Key: "setDefaultRWConcern", Value: 1},
		{Key: "defaultWriteConcern", Value: bson.D{{Key: "w", Value: "majority"}}},
		{Key: "writeConcern", Value: bson.D{{Key: "w", Value: "majority"}}},
	}, nil)
}

// ReadLive asks every configured member (and every member the live config names)
// what it is, then reads the config and default write concern from the primary, or
// from the member with the newest config. It fails only when no member answers.
func (c *Conn) ReadLive(ctx context.Context) (*Live, error) {
	live := &Live{}
	hosts := Hosts(c.topo)
	// Members are asked in parallel: an unreachable one costs a whole timeout.
	probe := func(hs []string) {
		views := make([]MemberView, len(hs))
		var wg sync.WaitGroup
		for i, h := range hs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				views[i] = c.Hello(ctx, h)
			}()
		}
		wg.Wait()
		for _, v := range views {
			live.Members = append(live.Members, v)
			if v.SetName != "" {
				live.Initiated = true
			}
			if v.Primary && live.Primary == "" {
				live.Primary = v.Host
			}
		}
	}
	probe(hosts)
	if len(live.Reachable()) == 0 {
		errs := make([]string, 0, len(live.Members))
		for _, m := range live.Members {
			errs = append(errs, m.Host+": "+m.Error)
		}
		return live, fmt.Errorf("no MongoDB member answers (%s); check that the mongo stack runs at the sites and that this machine reaches the members (in the lab: sitectl lab status)", strings.Join(errs, "; "))
	}
	if !live.Initiated {
		return live, nil
	}
	from := live.Primary
	if from == "" {
		best := int64(-1)
		for _, m := range live.Members {
			if m.SetName != "" && m.SetVersion > best {
				from, best = m.Host, m.SetVersion
			}
		}
	}
	cfg, err := c.GetConfig(ctx, from)
	if err != nil {
		return live, fmt.Errorf("read the replica set config from %s: %w", from, err)
	}
	live.Config = cfg
	// Members of the live config that no site lists any more.
	var extra []string
	for _, m := range cfg.Members {
		if !slices.Contains(hosts, m.Host) {
			extra = append(extra, m.Host)
		}
	}
	probe(extra)
	if live.DefaultWC, live.DefaultWCSource, err = c.DefaultWriteConcern(ctx, from); err != nil {
		return live, fmt.Errorf("read the default write concern from %s: %w", from, err)
	}
	return live, nil
}

// shortError keeps what matters of a driver error: the last connection error of a
// server selection timeout, not the whole topology description.
func shortError(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, "Last error: "); ok {
		after, _, _ = strings.Cut(after, " }")
		if _, tail, ok := strings.Cut(after, "]) "); ok {
			after = tail
		}
		return "unreachable: " + after
	}
	if strings.Contains(msg, "server selection error") {
		return "unreachable: no answer within the timeout"
	}
	return msg
}
