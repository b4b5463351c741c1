package mongofake_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/sitectl/sitectl/internal/mongofake"
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
	defer func() { _ = direct.Disconnect(ctx) }()
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
	defer func() { _ = rs.Disconnect(ctx) }()
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
	_ = ln.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "listener closed") {
			t.Errorf("Serve returned %v after the listener closed, want it to say so", err)
		}
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

// TestCutOffPrimaryRollsBack: a primary cut off from the majority keeps acting as
// primary until its step-down delay; a w:1 write it takes then is acknowledged, a
// w:majority write is not, the majority side elects and writes; after the heal the
// old primary's writes are rolled back, not merged, and it holds the majority's.
func TestCutOffPrimaryRollsBack(t *testing.T) {
	c, err := mongofake.NewCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := c.Hosts()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clients := map[string]*mongo.Client{}
	for _, host := range h {
		cl, err := mongo.Connect(options.Client().SetHosts([]string{host}).SetDirect(true).SetRetryWrites(false))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cl.Disconnect(ctx) }()
		clients[host] = cl
	}
	members := bson.A{}
	for i, host := range h {
		members = append(members, bson.D{{Key: "_id", Value: i}, {Key: "host", Value: host}, {Key: "priority", Value: []float64{2, 1, 1}[i]}})
	}
	if err := clients[h[0]].Database("admin").RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: bson.D{{Key: "_id", Value: "mgrs"}, {Key: "members", Value: members}}}}).Err(); err != nil {
		t.Fatal(err)
	}
	insert := func(host, id string, w any) (bson.M, error) {
		var r bson.M
		err := clients[host].Database("app").RunCommand(ctx, bson.D{{Key: "insert", Value: "rows"}, {Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: id}}}},
			{Key: "writeConcern", Value: bson.D{{Key: "w", Value: w}, {Key: "wtimeout", Value: 200}}}}).Decode(&r)
		return r, err
	}
	if r, err := insert(h[0], "before", "majority"); err != nil || r["writeConcernError"] != nil {
		t.Fatalf("write before the cut: %v %v", r, err)
	}

	c.SetStepDownAfter(time.Second)
	c.Cut(h[0], h[1])
	c.Cut(h[0], h[2])
	if got := c.Primaries(); len(got) != 2 || got[0] != h[0] {
		t.Fatalf("primaries right after the cut: %v, want the old one and a new one", got)
	}
	if r, err := insert(h[0], "w1-on-cut-off-primary", 1); err != nil || r["writeConcernError"] != nil {
		t.Fatalf("w:1 on the cut-off primary: %v %v (it is acknowledged: that is the danger)", r, err)
	}
	if r, err := insert(h[0], "majority-on-cut-off-primary", "majority"); err == nil && r["writeConcernError"] == nil {
		t.Fatalf("w:majority on the cut-off primary was acknowledged: %v", r)
	}
	newPrimary := c.Primaries()[1]
	if r, err := insert(newPrimary, "majority-side", "majority"); err != nil || r["writeConcernError"] != nil {
		t.Fatalf("w:majority on the new primary: %v %v", r, err)
	}
	time.Sleep(1200 * time.Millisecond)
	if got := c.Primaries(); len(got) != 1 || got[0] != newPrimary {
		t.Fatalf("primaries after the step-down delay: %v, want only %s", got, newPrimary)
	}

	c.HealAll()
	var rolled []string
	for _, d := range c.RolledBack(h[0]) {
		for _, e := range d {
			if e.Key == "_id" {
				rolled = append(rolled, e.Value.(string))
			}
		}
	}
	if len(rolled) != 2 || rolled[0] != "w1-on-cut-off-primary" || rolled[1] != "majority-on-cut-off-primary" {
		t.Errorf("rolled back on the old primary: %v, want its two writes from the cut", rolled)
	}
	var docs []bson.M
	cur, err := clients[h[0]].Database("app").Collection("rows").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0]["_id"] != "before" || docs[1]["_id"] != "majority-side" {
		t.Errorf("old primary holds %v after the heal, want before + majority-side (not merged)", docs)
	}
}

// TestReconfigQuorumCheck: like mongod, a non-forced replSetReconfig needs a
// majority of the new config's voting members to answer the primary. With the
// primary cut from one secondary, taking the other's vote would leave it alone out
// of two voters: refused with NodeNotFound (74), nothing changed, still primary.
// Taking the vote of the member it does not reach keeps its majority: accepted.
func TestReconfigQuorumCheck(t *testing.T) {
	c, err := mongofake.NewCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := c.Hosts()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := mongo.Connect(options.Client().SetHosts([]string{h[0]}).SetDirect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Disconnect(ctx) }()
	admin := cl.Database("admin")
	members := func(v1, v2 int) bson.A {
		return bson.A{
			bson.D{{Key: "_id", Value: 0}, {Key: "host", Value: h[0]}, {Key: "priority", Value: 2}},
			bson.D{{Key: "_id", Value: 1}, {Key: "host", Value: h[1]}, {Key: "votes", Value: v1}, {Key: "priority", Value: v1}},
			bson.D{{Key: "_id", Value: 2}, {Key: "host", Value: h[2]}, {Key: "votes", Value: v2}, {Key: "priority", Value: v2}},
		}
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: bson.D{{Key: "_id", Value: "mgrs"}, {Key: "members", Value: members(1, 1)}}}}).Err(); err != nil {
		t.Fatal(err)
	}
	c.Cut(h[0], h[2])
	if p := c.Primary(); p != h[0] {
		t.Fatalf("primary %q, want %s (it reaches %s: 2 votes of 3)", p, h[0], h[1])
	}
	reconfig := func(version int, v1, v2 int) error {
		return admin.RunCommand(ctx, bson.D{{Key: "replSetReconfig", Value: bson.D{{Key: "_id", Value: "mgrs"}, {Key: "version", Value: version}, {Key: "members", Value: members(v1, v2)}}}}).Err()
	}
	err = reconfig(2, 0, 1)
	var ce mongo.CommandError
	if !errorsAs(err, &ce) || ce.Code != 74 || !strings.Contains(ce.Message, "Quorum check failed") || !strings.Contains(ce.Message, h[2]+" failed") {
		t.Fatalf("reconfig leaving the primary 1 reachable vote of 2: %v, want NodeNotFound (74) naming %s", err, h[2])
	}
	if p := c.Primary(); p != h[0] {
		t.Errorf("primary %q after the refused reconfig, want %s", p, h[0])
	}
	var got struct {
		Config struct {
			Version int `bson:"version"`
		} `bson:"config"`
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Decode(&got); err != nil || got.Config.Version != 1 {
		t.Errorf("config version %d (%v) after the refused reconfig, want 1", got.Config.Version, err)
	}
	if err := reconfig(2, 1, 0); err != nil {
		t.Fatalf("reconfig taking the unreachable member's vote: %v", err)
	}
	if p := c.Primary(); p != h[0] {
		t.Errorf("primary %q after removing the unreachable member's vote, want %s", p, h[0])
	}
}

// TestServedStepDownElectsAnother: members served one per process (as the lab's
// stand-in runs them). The highest-priority primary steps down for 60 s
// (replSetStepDown); like mongod's members, which hold an election after their
// election timeout whatever a frozen member's priority, another member is elected
// within a few heartbeats instead of all waiting for the frozen one.
func TestServedStepDownElectsAnother(t *testing.T) {
	old := mongofake.ProbeInterval
	mongofake.ProbeInterval = 100 * time.Millisecond
	t.Cleanup(func() { mongofake.ProbeInterval = old })
	var hosts []string
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		host := ln.Addr().String()
		hosts = append(hosts, host)
		go func() { _ = mongofake.Serve(ln, host) }()
		t.Cleanup(func() { _ = ln.Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clients := map[string]*mongo.Client{}
	for _, h := range hosts {
		cl, err := mongo.Connect(options.Client().SetHosts([]string{h}).SetDirect(true))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cl.Disconnect(context.Background()) })
		clients[h] = cl
	}
	// A served member knows its peers from the config: initiate alone, then add
	// one voting member per reconfig (retried until the previous one committed).
	admin := clients[hosts[0]].Database("admin")
	members := bson.A{bson.D{{Key: "_id", Value: 0}, {Key: "host", Value: hosts[0]}, {Key: "priority", Value: 2}}}
	if err := admin.RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: bson.D{{Key: "_id", Value: "mgrs"}, {Key: "members", Value: members}}}}).Err(); err != nil {
		t.Fatal(err)
	}
	for i, h := range hosts[1:] {
		members = append(members, bson.D{{Key: "_id", Value: i + 1}, {Key: "host", Value: h}})
		for deadline := time.Now().Add(10 * time.Second); ; {
			err := admin.RunCommand(ctx, bson.D{{Key: "replSetReconfig", Value: bson.D{{Key: "_id", Value: "mgrs"}, {Key: "version", Value: 2 + i}, {Key: "members", Value: members}}}}).Err()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("add %s: %v", h, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	primary := func() string {
		for _, h := range hosts {
			var r struct {
				Primary bool `bson:"isWritablePrimary"`
			}
			if err := clients[h].Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&r); err == nil && r.Primary {
				return h
			}
		}
		return ""
	}
	waitPrimary := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if p := primary(); ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: primary %q after 5 s", what, primary())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitPrimary("the highest priority elected", func(p string) bool { return p == hosts[0] })
	// The added members vote once the primary has seen them catch up.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var rs struct {
			Voting int `bson:"votingMembersCount"`
		}
		if err := admin.RunCommand(ctx, bson.D{{Key: "replSetGetStatus", Value: 1}}).Decode(&rs); err == nil && rs.Voting == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the added members never counted as voters")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The step-down closes the primary's connections: its error tells nothing.
	_ = clients[hosts[0]].Database("admin").RunCommand(ctx, bson.D{{Key: "replSetStepDown", Value: 60}}).Err()
	p := waitPrimary("after the step-down", func(p string) bool { return p == hosts[1] || p == hosts[2] })
	t.Logf("elected %s", p)
}
