package mongodrill

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/internal/mongofake"
	"github.com/sitectl/sitectl/sites"
)

// mongoSet is a 1-1-1 replica set on mongofake (the project's MongoDB test fake: no
// mongod runs here), one member per site, cloud at the highest priority.
type mongoSet struct {
	fake  *mongofake.Cluster
	hosts map[string]string
	sides []drill.MongoSide
}

func startMongoSet(t *testing.T, topo *sites.Topology) *mongoSet {
	t.Helper()
	fake, err := mongofake.NewCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	m := &mongoSet{fake: fake, hosts: map[string]string{}}
	var members bson.A
	for i, name := range []string{"cloud", "douala", "yaounde"} {
		h := fake.Hosts()[i]
		m.hosts[name] = h
		prio := 1.0
		if name == "cloud" {
			prio = 2
		}
		members = append(members, bson.D{{Key: "_id", Value: i}, {Key: "host", Value: h}, {Key: "priority", Value: prio}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().SetHosts([]string{m.hosts["cloud"]}).SetDirect(true))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(ctx) }()
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: bson.D{
		{Key: "_id", Value: "rs-dr"}, {Key: "members", Value: members}}}}).Err(); err != nil {
		t.Fatal(err)
	}
	for fake.Primary() != m.hosts["cloud"] {
		if ctx.Err() != nil {
			t.Fatalf("no primary at cloud: %q", fake.Primary())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The topology's votes: one member per site.
	for _, s := range topo.Sites {
		s.Mongo.Members = []sites.MongoMember{{Host: m.hosts[s.Name]}}
	}
	for _, name := range []string{"cloud", "douala", "yaounde"} {
		side, err := Open(name, m.hosts[name], nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = side.Close() })
		m.sides = append(m.sides, side)
	}
	return m
}

// fakeCutter cuts a link for the replica set: every pair of members that the cut
// puts on different sides stops reaching each other (with hub-and-spoke tunnels douala
// and yaounde talk through the hub, so losing douala-cloud separates douala from both).
type fakeCutter struct {
	m    *mongoSet
	topo *sites.Topology
	cut  []sites.Link
}

func (c *fakeCutter) Cut(_ context.Context, l sites.Link) error {
	c.cut = append(c.cut, l)
	sides := drill.Sides(c.topo, c.cut)
	for i := range sides {
		for j := i + 1; j < len(sides); j++ {
			for _, a := range sides[i] {
				for _, b := range sides[j] {
					c.m.fake.Cut(c.m.hosts[a], c.m.hosts[b])
				}
			}
		}
	}
	return nil
}

func (c *fakeCutter) Heal(context.Context, sites.Link) error {
	c.m.fake.HealAll()
	c.cut = nil
	return nil
}

// TestPartitionDrillMongo runs a partition drill of douala with only MongoDB on a
// 1-1-1 replica set: the cloud+yaounde side takes majority writes, douala (a
// minority) cannot, and nothing majority-acknowledged is lost after the heal.
func TestPartitionDrillMongo(t *testing.T) {
	topo := &sites.Topology{Env: "test", Hub: "cloud",
		Sites: []*sites.Site{{Name: "cloud", Role: sites.RoleHub}, {Name: "douala", Role: sites.RoleSpoke}, {Name: "yaounde", Role: sites.RoleSpoke}},
		Links: []sites.Link{{A: "douala", B: "cloud"}, {A: "yaounde", B: "cloud"}}}
	m := startMongoSet(t, topo)
	link := topo.Links[0]
	d := &drill.Drill{Kind: "partition", Topo: topo, Site: "douala", Links: []sites.Link{link},
		Faults: drill.LinkFaults(&fakeCutter{m: m, topo: topo}, []sites.Link{link}), Mongo: m.sides,
		Settings: drill.Settings{Duration: time.Second, Writes: 1, Converge: 10 * time.Second, Sample: 50 * time.Millisecond}}
	rep := d.Run(context.Background())
	if !rep.Passed || rep.Mongo == nil || !rep.Mongo.Passed || rep.Mongo.Lost != 0 || len(rep.Mongo.Sides) != 2 {
		t.Fatalf("drill with MongoDB: %s; mongo %+v", rep.Summary(), rep.Mongo)
	}
	for _, s := range rep.Mongo.Sides {
		switch fmt.Sprint(s.Sites) {
		case "[cloud yaounde]":
			if !s.Majority || s.Acked == 0 {
				t.Errorf("the majority side could not write: %+v", s)
			}
		case "[douala]":
			if s.Majority || s.Acked != 0 || s.Failed == 0 {
				t.Errorf("the minority side wrote (or never tried): %+v", s)
			}
		default:
			t.Errorf("unexpected side %+v", s)
		}
	}
	for _, s := range rep.Mongo.Sides {
		t.Logf("%v votes=%d acked=%d failed=%d: %s", s.Sites, s.Votes, s.Acked, s.Failed, s.Outcome)
	}
}
