package mongofake_test

import (
	"context"
	"net"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/sitectl/sitectl/replication/mongo/mongofake"
)

// TestStandaloneWithDriverCRUD serves one member, initiates it as a one-member set
// through the real driver, then uses the driver's collection API in replica-set
// mode (discovery, primary selection, w:majority insert, find, count).
func TestStandaloneWithDriverCRUD(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- mongofake.Serve(ln, host) }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	direct, err := mongo.Connect(options.Client().SetHosts([]string{host}).SetDirect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Disconnect(ctx)
	err = direct.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: bson.D{
		{Key: "_id", Value: "mgrs"}, {Key: "members", Value: bson.A{bson.D{{Key: "_id", Value: 0}, {Key: "host", Value: host}}}}}}}).Err()
	if err != nil {
		t.Fatal(err)
	}
	err = direct.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: bson.D{}}}).Err()
	var ce mongo.CommandError
	if !errorsAs(err, &ce) || ce.Code != 23 {
		t.Errorf("second initiate: %v, want AlreadyInitialized (23)", err)
	}

	rs, err := mongo.Connect(options.Client().SetHosts([]string{host}).SetReplicaSet("mgrs").
		SetWriteConcern(writeconcern.Majority()).SetHeartbeatInterval(500 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Disconnect(ctx)
	if err := rs.Ping(ctx, readpref.Primary()); err != nil {
		t.Fatalf("no primary through replica-set discovery: %v", err)
	}
	coll := rs.Database("drill").Collection("rows")
	for i, site := range []string{"douala", "douala", "cloud"} {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "site", Value: site}}); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 0}}); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("duplicate _id: %v, want a duplicate key error", err)
	}
	cur, err := coll.Find(ctx, bson.D{{Key: "site", Value: "douala"}})
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.D
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Errorf("find site=douala: %d docs, want 2", len(docs))
	}
	if n, err := coll.EstimatedDocumentCount(ctx); err != nil || n != 3 {
		t.Errorf("count: %d, %v; want 3", n, err)
	}
	if _, err := coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: 1}}}}); err == nil {
		t.Error("an operator filter was accepted; the fake must refuse what it does not implement")
	}
	ln.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after the listener closed")
	}
}

func errorsAs(err error, target *mongo.CommandError) bool {
	ce, ok := err.(mongo.CommandError)
	if ok {
		*target = ce
	}
	return ok
}

// TestSCRAMAuth: with a user, the driver authenticates with SCRAM-SHA-256; a wrong
// password fails and an unauthenticated connection may only say hello.
func TestSCRAMAuth(t *testing.T) {
	c, err := mongofake.NewCluster(1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.AddUser("sitectl", "s3cret-ünïcode"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := func(cred *options.Credential) *mongo.Client {
		o := options.Client().SetHosts(c.Hosts()).SetDirect(true).SetServerSelectionTimeout(2 * time.Second)
		if cred != nil {
			o.SetAuth(*cred)
		}
		cl, err := mongo.Connect(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
		return cl
	}
	initiate := bson.D{{Key: "replSetInitiate", Value: bson.D{}}}

	anon := connect(nil)
	if err := anon.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Err(); err != nil {
		t.Fatalf("hello without auth: %v", err)
	}
	var ce mongo.CommandError
	if err := anon.Database("admin").RunCommand(ctx, initiate).Err(); !errorsAs(err, &ce) || ce.Code != 13 {
		t.Errorf("replSetInitiate without auth: %v, want Unauthorized (13)", err)
	}
	bad := connect(&options.Credential{Username: "sitectl", Password: "wrong"})
	if err := bad.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err == nil {
		t.Error("a wrong password authenticated")
	}
	good := connect(&options.Credential{Username: "sitectl", Password: "s3cret-ünïcode"})
	if err := good.Database("admin").RunCommand(ctx, initiate).Err(); err != nil {
		t.Fatalf("replSetInitiate as sitectl: %v", err)
	}
}
