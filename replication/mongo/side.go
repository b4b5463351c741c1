package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// DrillDB and DrillCollection hold the documents partition drills write.
const (
	DrillDB         = "sitectl_drill"
	DrillCollection = "rows"
)

// Side is the replica set as an application at one site sees it: writes go to the
// primary that the site's own member knows of (the primary it reaches through the
// tunnels), so a cut-off site without a majority has none to write to; sitectl
// itself reaches every member over its management path.
type Side struct {
	conn *Conn
	site string
	// WTimeout bounds how long a majority write waits for acknowledgements.
	WTimeout time.Duration
}

// Side returns the view of the replica set from site.
func (c *Conn) Side(site string) *Side { return &Side{conn: c, site: site, WTimeout: 5 * time.Second} }

// Site is the site this side writes from.
func (s *Side) Site() string { return s.site }

// ErrNoPrimary is returned when the site's members know of no primary.
var ErrNoPrimary = errors.New("no primary reachable")

// Primary returns the primary the site's members know of.
func (s *Side) Primary(ctx context.Context) (string, error) {
	var errs []error
	for _, h := range Hosts(s.conn.topo) {
		if SiteOf(s.conn.topo, h) != s.site {
			continue
		}
		v := s.conn.Hello(ctx, h)
		switch {
		case !v.Reachable:
			errs = append(errs, errors.New(v.Error))
		case v.Primary:
			return h, nil
		case v.SeesPrimary != "":
			return v.SeesPrimary, nil
		}
	}
	return "", fmt.Errorf("%s: %w (a minority does not elect one) %w", s.site, ErrNoPrimary, errors.Join(errs...))
}

// Insert writes one site-tagged document with write concern majority; nil means a
// majority of voting data-bearing members acknowledged it.
func (s *Side) Insert(ctx context.Context, id uuid.UUID, run string, seq int) error {
	p, err := s.Primary(ctx)
	if err != nil {
		return err
	}
	doc := bson.D{{Key: "_id", Value: bson.Binary{Subtype: bson.TypeBinaryUUID, Data: id[:]}}, {Key: "site", Value: s.site}, {Key: "run", Value: run}, {Key: "seq", Value: seq}}
	return s.conn.InsertMajority(ctx, p, DrillDB, DrillCollection, doc, s.WTimeout)
}

// IDs returns the ids of run's documents, read from the primary the site reaches,
// else from any member that answers.
func (s *Side) IDs(ctx context.Context, run string) (map[uuid.UUID]bool, error) {
	hosts := Hosts(s.conn.topo)
	if p, err := s.Primary(ctx); err == nil {
		hosts = append([]string{p}, hosts...)
	}
	var lastErr error
	for _, h := range hosts {
		cl, err := s.conn.client(h)
		if err != nil {
			lastErr = err
			continue
		}
		cur, err := cl.Database(DrillDB).Collection(DrillCollection).Find(ctx, bson.D{{Key: "run", Value: run}})
		if err != nil {
			lastErr = err
			continue
		}
		var docs []struct {
			ID bson.Binary `bson:"_id"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			lastErr = err
			continue
		}
		out := make(map[uuid.UUID]bool, len(docs))
		for _, d := range docs {
			if id, err := uuid.FromBytes(d.ID.Data); err == nil {
				out[id] = true
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("read run %s from %s's view: %w", run, s.site, lastErr)
}

// InsertMajority inserts doc on host with {w: majority, wtimeout}; a write concern
// error (not enough members acknowledged in time) is an error.
func (c *Conn) InsertMajority(ctx context.Context, host, db, coll string, doc bson.D, wtimeout time.Duration) error {
	cl, err := c.client(host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout+wtimeout)
	defer cancel()
	var r struct {
		N                 int `bson:"n"`
		WriteConcernError *struct {
			Errmsg string `bson:"errmsg"`
		} `bson:"writeConcernError"`
		WriteErrors []struct {
			Errmsg string `bson:"errmsg"`
		} `bson:"writeErrors"`
	}
	err = cl.Database(db).RunCommand(ctx, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: bson.A{doc}},
		{Key: "writeConcern", Value: bson.D{{Key: "w", Value: "majority"}, {Key: "wtimeout", Value: wtimeout.Milliseconds()}}}}).Decode(&r)
	switch {
	case err != nil:
		return fmt.Errorf("insert on %s: %w", host, err)
	case len(r.WriteErrors) > 0:
		return fmt.Errorf("insert on %s: %s", host, r.WriteErrors[0].Errmsg)
	case r.WriteConcernError != nil:
		return fmt.Errorf("insert on %s: not acknowledged by a majority: %s", host, r.WriteConcernError.Errmsg)
	}
	return nil
}
