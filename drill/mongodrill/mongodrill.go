// Package mongodrill is the MongoDB side of a partition drill: one client per site,
// connected directly to that site's replica set member, writing with write concern
// majority and reading back what survived. Which side of a cut can write is decided
// by the replica set (a majority of votes elects a primary), not by the drill.
package mongodrill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/sitectl/sitectl/drill"
)

// Database and Collection hold the drill's documents.
const (
	Database   = "sitectl"
	Collection = "drill"
)

// Dialer opens connections (in the lab: inside the site's namespace).
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Side is the replica set as seen from one site's member.
type Side struct {
	SiteName string
	Host     string
	client   *mongo.Client
}

var _ drill.MongoSide = (*Side)(nil)

// Open connects directly to host (no discovery: a client at a cut-off site reaches
// only its own member). dialer may be nil; cred may be nil.
func Open(site, host string, dialer Dialer, cred *options.Credential) (*Side, error) {
	opts := options.Client().SetHosts([]string{host}).SetDirect(true).
		SetServerSelectionTimeout(3 * time.Second).SetConnectTimeout(3 * time.Second).
		SetReadPreference(readpref.PrimaryPreferred()).
		// A refused write must fail now, not be retried against another selection:
		// which side can write is what the drill measures.
		SetRetryWrites(false)
	if dialer != nil {
		opts.SetDialer(dialer)
	}
	if cred != nil {
		opts.SetAuth(*cred)
	}
	c, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: mongodb %s: %w", site, host, err)
	}
	return &Side{SiteName: site, Host: host, client: c}, nil
}

// Site is the site this side writes from.
func (s *Side) Site() string { return s.SiteName }

// Close disconnects.
func (s *Side) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// InsertMajority inserts one document with write concern majority; nil means a
// majority of voting members acknowledged it.
func (s *Side) InsertMajority(ctx context.Context, r drill.Row) error {
	coll := s.client.Database(Database).Collection(Collection, options.Collection().SetWriteConcern(writeconcern.Majority()))
	_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: r.ID.String()}, {Key: "site", Value: r.Site},
		{Key: "run", Value: r.Run}, {Key: "seq", Value: r.Seq}})
	if err != nil {
		return fmt.Errorf("%s: majority write at %s: %w", s.SiteName, s.Host, err)
	}
	return nil
}

// IDs returns the ids of run's documents this member holds.
func (s *Side) IDs(ctx context.Context, run string) (map[uuid.UUID]bool, error) {
	cur, err := s.client.Database(Database).Collection(Collection).Find(ctx, bson.D{{Key: "run", Value: run}})
	if err != nil {
		return nil, fmt.Errorf("%s: read %s.%s at %s: %w", s.SiteName, Database, Collection, s.Host, err)
	}
	defer func() { _ = cur.Close(ctx) }()
	out := map[uuid.UUID]bool{}
	for cur.Next(ctx) {
		var d struct {
			ID string `bson:"_id"`
		}
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		id, err := uuid.Parse(d.ID)
		if err != nil {
			return nil, errors.New("a drill document with a non-UUID _id: " + d.ID)
		}
		out[id] = true
	}
	return out, cur.Err()
}
