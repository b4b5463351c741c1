package mongo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MemberStatus is one member in `sitectl mongo status`.
type MemberStatus struct {
	Host     string  `json:"host"`
	Site     string  `json:"site,omitempty"`
	State    string  `json:"state"`
	Healthy  bool    `json:"healthy"`
	Votes    int     `json:"votes"`
	Priority float64 `json:"priority"`
	// LagSeconds is how far the member's last applied write is behind the primary's.
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	// OplogWindowHours is the time span its oplog holds (how long it could be cut
	// off and still catch up from a peer with this window).
	OplogWindowHours *float64 `json:"oplog_window_hours,omitempty"`
}

// Status is the replica set's health.
type Status struct {
	ReplicaSet          string         `json:"replica_set"`
	Primary             string         `json:"primary,omitempty"`
	DefaultWriteConcern string         `json:"default_write_concern,omitempty"`
	Members             []MemberStatus `json:"members"`
	// OplogWindowHours is the shortest window among the data-bearing members read.
	OplogWindowHours  *float64 `json:"oplog_window_hours,omitempty"`
	MaxPartitionHours float64  `json:"max_partition_hours"`
	Warnings          []string `json:"warnings,omitempty"`
}

type statusReply struct {
	Set     string `bson:"set"`
	Members []struct {
		ID         int           `bson:"_id"`
		Name       string        `bson:"name"`
		Health     float64       `bson:"health"`
		StateStr   string        `bson:"stateStr"`
		OptimeDate bson.DateTime `bson:"optimeDate"`
	} `bson:"members"`
}

type oplogDoc struct {
	TS bson.Timestamp `bson:"ts"`
}

// OplogWindow returns the time between the first and last entries of a member's oplog.
func (c *Conn) OplogWindow(ctx context.Context, host string) (time.Duration, error) {
	cl, err := c.client(host)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	coll := cl.Database("local").Collection("oplog.rs")
	var first, last oplogDoc
	if err := coll.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: 1}})).Decode(&first); err != nil {
		return 0, fmt.Errorf("read the oldest oplog entry on %s: %w", host, err)
	}
	if err := coll.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}})).Decode(&last); err != nil {
		return 0, fmt.Errorf("read the newest oplog entry on %s: %w", host, err)
	}
	return time.Duration(int64(last.TS.T)-int64(first.TS.T)) * time.Second, nil
}

// GetStatus reads the replica set's status from the primary (or any member that
// answers), the lag of each member, the oplog window of each reachable data-bearing
// member, and warns about what threatens the design: no primary, unreachable
// members, no majority default write concern, a window shorter than max_partition.
func (c *Conn) GetStatus(ctx context.Context) (*Status, error) {
	live, err := c.ReadLive(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{}
	for _, s := range c.topo.Sites {
		if s.HasStack("mongo") {
			st.ReplicaSet = s.Mongo.ReplicaSet
			st.MaxPartitionHours = max(st.MaxPartitionHours, s.Mongo.MaxPartition.D().Hours())
		}
	}
	if !live.Initiated {
		st.Warnings = append(st.Warnings, "the replica set is not initiated: run `sitectl deploy` for "+Initiator(c.topo))
		for _, m := range live.Members {
			st.Members = append(st.Members, MemberStatus{Host: m.Host, Site: m.Site, State: stateOr(m, "STARTUP"), Healthy: m.Reachable})
		}
		return st, nil
	}
	from := live.Primary
	if from == "" {
		from = live.Reachable()[0]
		st.Warnings = append(st.Warnings, "no primary: no member reaches a majority of the votes; the set is read-only (a minority never promotes itself)")
	}
	st.Primary = live.Primary
	st.DefaultWriteConcern = fmt.Sprintf("%s (%s)", live.DefaultWC, live.DefaultWCSource)
	if !live.MajorityDefault() {
		st.Warnings = append(st.Warnings, fmt.Sprintf("default write concern is %s, not majority: acknowledged writes may be rolled back after a partition; `sitectl deploy` sets it", st.DefaultWriteConcern))
	}
	var rs statusReply
	if err := c.Run(ctx, from, bson.D{{Key: "replSetGetStatus", Value: 1}}, &rs); err != nil {
		return nil, fmt.Errorf("replSetGetStatus on %s: %w", from, err)
	}
	var primaryOp time.Time
	for _, m := range rs.Members {
		if m.Name == live.Primary {
			primaryOp = m.OptimeDate.Time()
		}
	}
	for _, m := range rs.Members {
		ms := MemberStatus{Host: m.Name, Site: SiteOf(c.topo, m.Name), State: m.StateStr, Healthy: m.Health == 1}
		if cm := live.Config.Member(m.Name); cm != nil {
			ms.Votes, ms.Priority = cm.Votes, cm.Priority
			if ms.Site == "" {
				ms.Site = cm.Site()
			}
			if ms.Healthy && !cm.ArbiterOnly {
				if w, err := c.OplogWindow(ctx, m.Name); err == nil {
					h := w.Hours()
					ms.OplogWindowHours = &h
					if st.OplogWindowHours == nil || h < *st.OplogWindowHours {
						st.OplogWindowHours = &h
					}
				} else {
					st.Warnings = append(st.Warnings, err.Error())
				}
			}
		}
		if ms.Healthy && !primaryOp.IsZero() && !m.OptimeDate.Time().IsZero() {
			lag := max(primaryOp.Sub(m.OptimeDate.Time()).Seconds(), 0)
			ms.LagSeconds = &lag
		}
		if !ms.Healthy {
			st.Warnings = append(st.Warnings, fmt.Sprintf("member %s (%s) is not reachable from %s", m.Name, ms.Site, from))
		}
		st.Members = append(st.Members, ms)
	}
	if st.OplogWindowHours != nil && st.MaxPartitionHours > 0 && *st.OplogWindowHours < st.MaxPartitionHours {
		st.Warnings = append(st.Warnings, fmt.Sprintf("oplog window %.1fh is shorter than mongo.max_partition %.1fh: a member cut off that long cannot catch up and needs a full resync; grow the oplog (replSetResizeOplog) or lower max_partition", *st.OplogWindowHours, st.MaxPartitionHours))
	}
	return st, nil
}

// Problems are what make `sitectl mongo status` fail: no primary (which includes a
// set not initiated) and members that are unreachable or neither primary, secondary
// nor arbiter. Warnings about settings (write concern, oplog window) do not.
func (st *Status) Problems() []string {
	var out []string
	if st.Primary == "" {
		out = append(out, "no primary")
	}
	for _, m := range st.Members {
		switch {
		case !m.Healthy:
			out = append(out, fmt.Sprintf("member %s (%s) is not reachable", m.Host, dash(m.Site)))
		case m.State != "PRIMARY" && m.State != "SECONDARY" && m.State != "ARBITER":
			out = append(out, fmt.Sprintf("member %s (%s) is %s", m.Host, dash(m.Site), m.State))
		}
	}
	return out
}

// Verdict is the last line of `sitectl mongo status`.
func (st *Status) Verdict() string {
	if p := st.Problems(); len(p) > 0 {
		return fmt.Sprintf("✗ replica set %s: %s", st.ReplicaSet, strings.Join(p, "; "))
	}
	return fmt.Sprintf("✓ replica set %s: primary %s, every member healthy", st.ReplicaSet, st.Primary)
}

func stateOr(m MemberView, def string) string {
	if !m.Reachable {
		return "(not reachable)"
	}
	return def
}

// Render prints the status for people.
func (st *Status) Render(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "replica set %s  primary %s  default write concern %s\n", st.ReplicaSet, dash(st.Primary), dash(st.DefaultWriteConcern))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSITE\tSTATE\tVOTES\tPRIORITY\tLAG\tOPLOG WINDOW")
	for _, m := range st.Members {
		lag, win := "-", "-"
		if m.LagSeconds != nil {
			lag = fmt.Sprintf("%.0fs", *m.LagSeconds)
		}
		if m.OplogWindowHours != nil {
			win = fmt.Sprintf("%.1fh", *m.OplogWindowHours)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%g\t%s\t%s\n", m.Host, dash(m.Site), m.State, m.Votes, m.Priority, lag, win)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.OplogWindowHours != nil {
		fmt.Fprintf(&b, "oplog window %.1fh (longest partition to survive: %.1fh)\n", *st.OplogWindowHours, st.MaxPartitionHours)
	}
	for _, wn := range st.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", wn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
