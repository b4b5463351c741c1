package mongo

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// planAll plans every site and renders the plan with member hosts replaced by
// site-stable names, so the golden file does not depend on ports.
func planAll(ctx context.Context, t *testing.T, topo *sites.Topology, b *backend) (*plan.Plan, string) {
	t.Helper()
	part := Part{Connect: func(tp *sites.Topology) *Conn { return connTo(t, tp) }}
	p := &plan.Plan{Env: topo.Env}
	for _, s := range topo.Sites {
		steps, err := part.Plan(ctx, topo, s)
		if err != nil {
			t.Fatalf("plan %s: %v", s.Name, err)
		}
		p.Sites = append(p.Sites, plan.SitePlan{Site: s.Name, Steps: steps})
	}
	var buf bytes.Buffer
	if err := p.Render(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for i, h := range b.hosts {
		out = strings.ReplaceAll(out, h, []string{"cloud-m1", "douala-m1", "yaounde-m1", "douala-m2", "yaounde-m2"}[i])
	}
	return p, out
}

func TestReconcile(t *testing.T) {
	for _, be := range backends(3) {
		t.Run(be.name, func(t *testing.T) {
			b := be.make(t)
			ctx := context.Background()
			topo := topoOn(t, b, nil)
			_, rendered := planAll(ctx, t, topo, b)
			golden.Assert(t, "plan-new-set.golden", []byte(rendered))

			deploySites(ctx, t, topo, "cloud", "douala", "yaounde")
			c := connTo(t, topo)
			live, err := c.ReadLive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if live.Primary != b.hosts[0] {
				t.Errorf("primary %q, want the cloud member %s (highest priority)", live.Primary, b.hosts[0])
			}
			if !live.MajorityDefault() {
				t.Errorf("default write concern %s (%s), want majority (global)", live.DefaultWC, live.DefaultWCSource)
			}
			if got := len(live.Config.Members); got != 3 || live.Config.Voters() != 3 {
				t.Fatalf("config has %d members, %d voters; want 3, 3", got, live.Config.Voters())
			}
			for i, site := range []string{"cloud", "douala", "yaounde"} {
				m := live.Config.Member(b.hosts[i])
				if m == nil || m.Site() != site {
					t.Errorf("member %s: %+v, want tagged site=%s", b.hosts[i], m, site)
				}
			}
			if m := live.Config.Member(b.hosts[0]); m.Priority != HubPriority {
				t.Errorf("cloud priority %g, want %d", m.Priority, HubPriority)
			}

			// A second deploy with nothing changed does nothing.
			p, _ := planAll(ctx, t, topo, b)
			if p.Changes() != 0 {
				var buf bytes.Buffer
				_ = p.Render(&buf)
				t.Errorf("second plan has changes:\n%s", buf.String())
			}

			// A priority change is one update step at its site.
			pr := 0.5
			topo.Site("douala").Mongo.Members[0].Priority = &pr
			_, rendered = planAll(ctx, t, topo, b)
			golden.Assert(t, "plan-update-priority.golden", []byte(rendered))
			deploySites(ctx, t, topo, "douala")
			cfg, err := c.GetConfig(ctx, b.hosts[0])
			if err != nil {
				t.Fatal(err)
			}
			if m := cfg.Member(b.hosts[1]); m.Priority != 0.5 {
				t.Errorf("douala priority %g after deploy, want 0.5", m.Priority)
			}
		})
	}
}

func TestReconcileOneVotingChangePerReconfig(t *testing.T) {
	for _, be := range backends(5) {
		t.Run(be.name, func(t *testing.T) {
			b := be.make(t)
			ctx := context.Background()
			small := topoOn(t, &backend{hosts: b.hosts[:3]}, nil)
			deploySites(ctx, t, small, "cloud", "douala", "yaounde")
			c := connTo(t, small)

			// The server refuses two voting additions in one reconfig...
			live, err := c.ReadLive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cfg := live.Config.Clone()
			cfg.Version++
			cfg.Term = 0
			cfg.Members = append(cfg.Members, Member{ID: 10, Host: b.hosts[3], Votes: 1, Priority: 1}, Member{ID: 11, Host: b.hosts[4], Votes: 1, Priority: 1})
			err = c.Run(ctx, live.Primary, bson.D{{Key: "replSetReconfig", Value: cfg}}, nil)
			if ServerCode(err) != CodeNewConfigIncompatible {
				t.Fatalf("reconfig adding 2 voters: err %v (code %d), want NewReplicaSetConfigurationIncompatible", err, ServerCode(err))
			}

			// ...so the 2-2-1 layout is reached one member per reconfig, and douala and
			// yaounde deploying at the same time retry around each other.
			big := topoOn(t, b, nil)
			var wg sync.WaitGroup
			for _, s := range []string{"douala", "yaounde"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					deploySites(ctx, t, big, s)
				}()
			}
			wg.Wait()
			live, err = connTo(t, big).ReadLive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if live.Config.Voters() != 5 {
				t.Errorf("%d voters after the 2-2-1 deploy, want 5", live.Config.Voters())
			}
		})
	}
}

func TestChangesOrder(t *testing.T) {
	t.Parallel()
	topo := loadTopo(t, twoTwoOne)
	desired, err := Build(topo)
	if err != nil {
		t.Fatal(err)
	}
	// Live: the 1-1-1 set plus a stale douala member no config lists any more.
	live := &Live{Initiated: true, DefaultWC: "1", DefaultWCSource: "implicit", Config: &Config{Name: "rs-sitectl", Version: 3, Members: []Member{
		{ID: 0, Host: "10.30.0.11:27017", Votes: 1, Priority: 2, Tags: map[string]string{TagSite: "cloud"}},
		{ID: 1, Host: "10.10.0.12:27017", Votes: 1, Priority: 1, Tags: map[string]string{TagSite: "douala"}},
		{ID: 2, Host: "10.20.0.11:27017", Votes: 1, Priority: 3, Tags: map[string]string{TagSite: "yaounde"}},
		{ID: 3, Host: "10.10.0.99:27017", Votes: 1, Priority: 1, Tags: map[string]string{TagSite: "douala"}},
		{ID: 4, Host: "10.10.0.98:27017", Votes: 0, Priority: 0, Tags: map[string]string{TagSite: "douala"}},
	}}}
	var buf bytes.Buffer
	for _, site := range []string{"cloud", "douala", "yaounde"} {
		for _, ch := range Changes(topo, desired, live, site) {
			buf.WriteString(site + ": " + string(ch.Kind) + " " + ch.Member.Host + " voting=" + map[bool]string{true: "yes", false: "no"}[ch.Voting] + " " + strings.Join(ch.Diff, "; ") + "\n")
		}
	}
	got := buf.String()
	// douala: non-voting removal before the voting one, removals before additions.
	if i, j, k := strings.Index(got, "remove 10.10.0.98"), strings.Index(got, "remove 10.10.0.99"), strings.Index(got, "add 10.10.0.13"); i < 0 || j < i || k < j {
		t.Errorf("douala steps out of order:\n%s", got)
	}
	golden.Assert(t, "changes-order.golden", []byte(got))
}

// TestReconcileWithAuth: with mongo.user set, sitectl authenticates (SCRAM-SHA-256)
// for every command; the fake refuses unauthenticated ones, as mongod with keyfile
// auth does. The password comes from its reference and appears in no output.
func TestReconcileWithAuth(t *testing.T) {
	const pw = "mg-test-password-93"
	b := backends(3)[0].make(t)
	for _, u := range []string{"sitectl"} {
		if err := b.fake.AddUser(u, pw); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("MG_TEST_MONGO_PASSWORD", pw)
	topo := topoOn(t, b, func(tp *sites.Topology) {
		for _, s := range tp.Sites {
			s.Mongo.User, s.Mongo.Password = "sitectl", sites.SecretRef{Env: "MG_TEST_MONGO_PASSWORD"}
		}
	})
	ctx := context.Background()
	p, rendered := planAll(ctx, t, topo, b)
	if p.Changes() == 0 || strings.Contains(rendered, pw) {
		t.Fatalf("plan with auth: %d changes; password shown: %t", p.Changes(), strings.Contains(rendered, pw))
	}
	deploySites(ctx, t, topo, "cloud", "douala", "yaounde")
	st, err := connTo(t, topo).GetStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Primary != b.hosts[0] || len(st.Members) != 3 {
		t.Errorf("status with auth: primary %q, %d members", st.Primary, len(st.Members))
	}

	// Without the password sitectl cannot run anything but hello.
	for _, s := range topo.Sites {
		s.Mongo.User = ""
	}
	if _, err := connTo(t, topo).GetStatus(ctx); err == nil || !strings.Contains(err.Error(), "requires authentication") {
		t.Errorf("status without credentials: %v, want an authentication error", err)
	}
}

// TestReconcileStepsDownPrimary: making the primary unelectable (priority 0) steps
// it down first, then the change is made on the new primary.
func TestReconcileStepsDownPrimary(t *testing.T) {
	for _, be := range backends(3) {
		t.Run(be.name, func(t *testing.T) {
			b := be.make(t)
			ctx := context.Background()
			topo := topoOn(t, b, nil)
			deploySites(ctx, t, topo, "cloud", "douala", "yaounde")
			topo.Site("cloud").Mongo.Members[0].Priority = new(float64)
			_, rendered := planAll(ctx, t, topo, b)
			if !strings.Contains(rendered, "stepped down first") {
				t.Errorf("plan does not say the primary is stepped down first:\n%s", rendered)
			}
			deploySites(ctx, t, topo, "cloud")
			c := connTo(t, topo)
			live, err := c.ReadLive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if live.Primary == "" || live.Primary == b.hosts[0] {
				t.Errorf("primary %q after making the cloud member priority 0", live.Primary)
			}
			if m := live.Config.Member(b.hosts[0]); m.Priority != 0 {
				t.Errorf("cloud priority %g, want 0", m.Priority)
			}
		})
	}
}

// TestPartClosesConnections: neither planning nor an applied step leaves a client
// connected behind it (each would keep the driver's monitors and sockets alive for
// as long as the process runs).
func TestPartClosesConnections(t *testing.T) {
	for _, be := range backends(3) {
		t.Run(be.name, func(t *testing.T) {
			b := be.make(t)
			ctx := context.Background()
			topo := topoOn(t, b, nil)
			var conns []*Conn
			part := Part{Connect: func(tp *sites.Topology) *Conn {
				c := connTo(t, tp)
				conns = append(conns, c)
				return c
			}}
			connected := func() int {
				n := 0
				for _, c := range conns {
					c.mu.Lock()
					n += len(c.clients)
					c.mu.Unlock()
				}
				return n
			}
			applied := 0
			for _, s := range topo.Sites {
				before := len(conns)
				steps, err := part.Plan(ctx, topo, s)
				if err != nil {
					t.Fatalf("plan %s: %v", s.Name, err)
				}
				if len(conns) != before+1 {
					t.Fatalf("planning %s opened %d connections, want 1", s.Name, len(conns)-before)
				}
				if n := connected(); n != 0 {
					t.Fatalf("after planning %s: %d clients still connected", s.Name, n)
				}
				for _, st := range steps {
					if st.Apply == nil {
						continue
					}
					before := len(conns)
					if err := st.Apply(ctx); err != nil {
						t.Fatalf("%s: %v", st, err)
					}
					applied++
					if len(conns) != before+1 {
						t.Fatalf("%s opened %d connections, want its own 1", st, len(conns)-before)
					}
					if n := connected(); n != 0 {
						t.Fatalf("after %s: %d clients still connected", st, n)
					}
				}
			}
			if applied == 0 {
				t.Fatal("no step applied: the set was not built")
			}
		})
	}
}

// TestPlanRefusesUnreadableCredential: a password whose source is unset or
// unreadable fails the plan naming the user, the site and the reference; it is not
// mistaken for members that do not answer yet (which plans the set "during deploy").
func TestPlanRefusesUnreadableCredential(t *testing.T) {
	b := backends(3)[0].make(t)
	dir := t.TempDir()
	for name, ref := range map[string]sites.SecretRef{
		"env unset":         {Env: "MG_TEST_UNSET_PASSWORD"},
		"file is directory": {File: dir},
	} {
		t.Run(name, func(t *testing.T) {
			topo := topoOn(t, b, func(tp *sites.Topology) {
				for _, s := range tp.Sites {
					s.Mongo.User, s.Mongo.Password = "sitectl", ref
				}
			})
			part := Part{Connect: func(tp *sites.Topology) *Conn { return connTo(t, tp) }}
			steps, err := part.Plan(context.Background(), topo, topo.Sites[0])
			if err == nil || !strings.Contains(err.Error(), "mongo user sitectl of") || !strings.Contains(err.Error(), ref.String()) {
				t.Fatalf("plan = %d steps, err %v; want an error naming the user and %s", len(steps), err, ref)
			}
		})
	}
}
