package mongo

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/internal/mongofake"
)

// served runs three members the way the lab's mongo stand-in runs them (one
// mongofake.Serve each, talking over TCP only), with short apply and probe
// intervals; stop closes a member's listener (its mongod and data gone), serve
// starts a new, empty process at the same address.
type served struct {
	t   *testing.T
	b   *backend
	mu  sync.Mutex
	lns map[string]net.Listener
	wg  sync.WaitGroup
}

func newServed(t *testing.T) *served {
	oldApply := applyTimeout
	applyTimeout = 15 * time.Second
	t.Cleanup(func() { applyTimeout = oldApply })
	old := mongofake.ProbeInterval
	mongofake.ProbeInterval = 100 * time.Millisecond
	t.Cleanup(func() { mongofake.ProbeInterval = old })
	s := &served{t: t, b: &backend{name: "served"}, lns: map[string]net.Listener{}}
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.b.hosts = append(s.b.hosts, ln.Addr().String())
		_ = ln.Close()
	}
	for _, h := range s.b.hosts {
		s.serve(h)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		for _, ln := range s.lns {
			_ = ln.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *served) serve(host string) {
	ln, err := net.Listen("tcp", host)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.lns[host] = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = mongofake.Serve(ln, host)
	}()
}

func (s *served) stop(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.lns[host].Close()
}

// deploy deploys the three sites on the served members, waits until the primary
// (the hub's) counts every member as a voter (their newlyAdded cleared, a config
// version of its own), writes one document with majority and returns the
// connection and the members as they began.
func (s *served) deploy(ctx context.Context) (*Conn, []Member) {
	t := s.t
	topo := topoOn(t, s.b, nil)
	deploySites(ctx, t, topo, "cloud", "douala", "yaounde")
	c := connTo(t, topo)
	cloud := s.b.hosts[0]
	for deadline := time.Now().Add(10 * time.Second); ; {
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
		t.Fatal(err)
	}
	live, err := c.ReadLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, live.Config.Clone().Members
}

// TestRebuildServedMembers rebuilds douala on three separately served members, the
// way the lab's mongo stand-in runs them (one mongofake.Serve each, talking over
// TCP only): douala's process is stopped for good, its vote removed on the primary;
// a new empty process on the same address joins from the config and catches up; its
// vote comes back and the members end as they began.
func TestRebuildServedMembers(t *testing.T) {
	s := newServed(t)
	b := s.b
	ctx := context.Background()
	c, orig := s.deploy(ctx)
	cloud, douala := b.hosts[0], b.hosts[1]

	s.stop(douala) // douala's mongod and its data are gone
	r, err := c.PlanRebuild(ctx, "douala", RebuildOptions{Wait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Steps[0].Apply(ctx); err != nil {
		l, lerr := c.ReadLive(ctx)
		t.Logf("live %+v %v", l, lerr)
		if l != nil && l.Config != nil {
			t.Logf("config %+v", l.Config.Members)
		}
		t.Fatal(err)
	}
	s.serve(douala) // redeployed: a new, empty process at the same address
	for _, st := range r.Steps[1:] {
		if err := st.Apply(ctx); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	for _, rc := range r.Reconfigs {
		if rc.Path != PathReconfig || rc.On != cloud {
			t.Errorf("reconfig %+v: want a normal reconfig on the primary %s", rc, cloud)
		}
	}
	if len(r.Reconfigs) != 2 {
		t.Errorf("%d reconfigs, want 2", len(r.Reconfigs))
	}
	live, err := c.ReadLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b Member) bool {
		return a.ID == b.ID && a.Host == b.Host && a.Votes == b.Votes && a.Priority == b.Priority && a.Site() == b.Site()
	}
	if !slices.EqualFunc(live.Config.Members, orig, same) {
		t.Errorf("final members %+v, want %+v", live.Config.Members, orig)
	}
	if !holds(ctx, t, c, douala, "before") {
		t.Error("the new douala process does not hold the write made before the loss")
	}
}
