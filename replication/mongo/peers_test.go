package mongo

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/internal/mongofake"
	"github.com/sitectl/sitectl/sites"
)

// cutNet is the network between separately served fake members: each member
// dials its peers through it, and a cut pair cannot connect either way.
type cutNet struct {
	mu   sync.Mutex
	cuts map[[2]string]bool
}

func (n *cutNet) set(a, b string, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a > b {
		a, b = b, a
	}
	n.cuts[[2]string{a, b}] = cut
}

func (n *cutNet) dialFrom(self string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		a, b := self, addr
		if a > b {
			a, b = b, a
		}
		n.mu.Lock()
		cut := n.cuts[[2]string{a, b}]
		n.mu.Unlock()
		if cut {
			return nil, errors.New("cut")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// TestServedMembersAcrossProcesses runs three members the way the lab's stand-in
// does (one mongofake.Serve each, talking to each other only over the network),
// reconciles them into a replica set with sitectl, and cuts the network between
// them: elections and majority writes follow what each member can reach.
func TestServedMembersAcrossProcesses(t *testing.T) {
	old := mongofake.ProbeInterval
	mongofake.ProbeInterval = 100 * time.Millisecond
	t.Cleanup(func() { mongofake.ProbeInterval = old })
	network := &cutNet{cuts: map[[2]string]bool{}}
	b := &backend{name: "served"}
	var lns []net.Listener
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		b.hosts = append(b.hosts, ln.Addr().String())
	}
	var wg sync.WaitGroup
	for i, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = mongofake.ServeWith(ln, b.hosts[i], mongofake.Options{Dial: network.dialFrom(b.hosts[i])})
		}()
	}
	t.Cleanup(func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
		wg.Wait()
	})
	topo := topoOn(t, b, nil)
	exerciseServed(t, topo, b.hosts, func(h string, on bool) {
		for _, o := range b.hosts {
			if o != h {
				network.set(h, o, on)
			}
		}
	})
}

// exerciseServed reconciles separately served members (hosts: cloud, douala,
// yaounde) into a replica set, then isolates members from the others with isolate:
// elections and majority writes must follow what each member reaches.
func exerciseServed(t *testing.T, topo *sites.Topology, hosts []string, isolate func(host string, on bool)) {
	ctx := context.Background()
	deploySites(ctx, t, topo, "cloud", "douala", "yaounde")
	c := connTo(t, topo)
	cloud, douala := hosts[0], hosts[1]

	waitFor := func(what string, cond func(l *Live) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			l, err := c.ReadLive(ctx)
			if err == nil && cond(l) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reached in 10s (live %+v, err %v)", what, l, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("3 voters, cloud primary, the others its secondaries", func(l *Live) bool {
		if l.Primary != cloud || l.Config == nil || l.Config.Voters() != 3 || !l.MajorityDefault() {
			return false
		}
		for _, m := range l.Members {
			if m.Host != cloud && (!m.Secondary || m.SeesPrimary != cloud) {
				return false
			}
		}
		return true
	})
	// The newcomers count towards majorities once the primary has seen them catch up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var rs struct {
			Voting int `bson:"votingMembersCount"`
		}
		if err := c.Run(ctx, cloud, bson.D{{Key: "replSetGetStatus", Value: 1}}, &rs); err == nil && rs.Voting == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the added members never counted as voters")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := insertMajority(ctx, c, cloud, bson.D{{Key: "_id", Value: "before"}}); err != nil {
		t.Fatalf("majority write with all members: %v", err)
	}

	// douala cut off: cloud keeps the primary (with yaounde) and takes majority
	// writes; douala sees no primary.
	isolate(douala, true)
	waitFor("douala without a primary", func(l *Live) bool {
		for _, m := range l.Members {
			if m.Host == douala {
				return m.Secondary && m.SeesPrimary == ""
			}
		}
		return false
	})
	if err := insertMajority(ctx, c, cloud, bson.D{{Key: "_id", Value: "during-cut"}}); err != nil {
		t.Fatalf("majority write on the majority side: %v", err)
	}
	if err := insertMajority(ctx, c, douala, bson.D{{Key: "_id", Value: "minority"}}); ServerCode(err) != CodeNotWritablePrimary {
		t.Fatalf("write on the cut-off minority: %v, want NotWritablePrimary", err)
	}

	// cloud lost too (hub-and-spoke: the spokes cannot reach each other): no primary.
	isolate(cloud, true)
	waitFor("no primary anywhere", func(l *Live) bool { return l.Primary == "" })

	// Heal: cloud is primary again and douala holds the write it missed.
	isolate(douala, false)
	isolate(cloud, false)
	waitFor("cloud primary after the heal", func(l *Live) bool { return l.Primary == cloud })
	deadline = time.Now().Add(10 * time.Second)
	for {
		cl, err := c.client(douala)
		if err != nil {
			t.Fatal(err)
		}
		n, err := cl.Database("drill").Collection("rows").EstimatedDocumentCount(ctx)
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("douala holds %d documents after the heal (err %v), want 2", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
