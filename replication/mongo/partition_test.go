package mongo

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sitectl/sitectl/sites"
)

// TestPartitionsMatchAnalysis cuts the fake replica set the way each scenario of
// the analysis cuts the tunnels, and checks the set elects where the analysis says
// and takes majority writes only there. Real mongod members cannot be partitioned
// from each other on one host without iptables, so this runs on the fake only.
func TestPartitionsMatchAnalysis(t *testing.T) {
	for _, layout := range []struct {
		name   string
		hosts  int
		mutate func(*sites.Topology)
	}{
		{"hub-and-spoke-111", 3, nil},
		{"direct-111", 3, directLink},
		{"hub-and-spoke-221", 5, nil},
		{"direct-221", 5, directLink},
	} {
		t.Run(layout.name, func(t *testing.T) {
			t.Parallel()
			b := backends(layout.hosts)[0].make(t)
			ctx := context.Background()
			topo := topoOn(t, b, layout.mutate)
			deploySites(ctx, t, topo, "cloud", "douala", "yaounde")
			a, err := Analyze(topo)
			if err != nil {
				t.Fatal(err)
			}
			c := connTo(t, topo)
			r := reach{topo: topo}
			for i, sc := range a.Scenarios {
				t.Run(strings.ReplaceAll(sc.Name, " ", "_"), func(t *testing.T) {
					b.fake.HealAll()
					for _, h := range b.hosts {
						b.fake.SetDown(h, false)
					}
					r.cut, r.lost = nil, sc.Lost
					for _, l := range topo.Links {
						if slices.Contains(sc.Cut, l.Name()) {
							r.cut = append(r.cut, l)
						}
					}
					for _, x := range b.hosts {
						for _, y := range b.hosts {
							if x < y && !r.ok(SiteOf(topo, x), SiteOf(topo, y)) {
								b.fake.Cut(x, y)
							}
						}
					}
					for _, h := range b.hosts {
						if slices.Contains(sc.Lost, SiteOf(topo, h)) {
							b.fake.SetDown(h, true)
						}
					}
					primary := SiteOf(topo, b.fake.Primary())
					want := append([]string{sc.Primary}, sc.Candidates...)
					if !slices.Contains(want, primary) {
						t.Errorf("fake elected at %q; the analysis says %q (candidates %v)", primary, sc.Primary, sc.Candidates)
					}
					// Majority writes succeed at the primary exactly when the analysis lists
					// writable sites; members elsewhere refuse writes.
					for _, h := range b.hosts {
						if slices.Contains(sc.Lost, SiteOf(topo, h)) {
							continue
						}
						err := insertMajority(ctx, c, h, bson.D{{Key: "_id", Value: sc.Name + "@" + h}, {Key: "site", Value: SiteOf(topo, h)}})
						isPrimary := h == b.fake.Primary()
						switch {
						case isPrimary && len(sc.Writable) > 0 && err != nil:
							t.Errorf("majority write at the primary %s failed: %v", h, err)
						case isPrimary && len(sc.Writable) == 0 && err == nil:
							t.Errorf("majority write at %s succeeded; the analysis says no site can write", h)
						case !isPrimary && ServerCode(err) != CodeNotWritablePrimary:
							t.Errorf("write at non-primary %s: %v, want NotWritablePrimary", h, err)
						}
					}
					_ = i
				})
			}
		})
	}
}

func TestStatusAndOplogWindow(t *testing.T) {
	t.Parallel()
	b := backends(3)[0].make(t)
	ctx := context.Background()
	clock := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b.fake.SetClock(func() time.Time { return clock })
	topo := topoOn(t, b, nil)
	deploySites(ctx, t, topo, "cloud", "douala", "yaounde")
	c := connTo(t, topo)
	clock = clock.Add(2 * time.Hour)
	if err := insertMajority(ctx, c, b.hosts[0], bson.D{{Key: "_id", Value: "later"}}); err != nil {
		t.Fatal(err)
	}
	st, err := c.GetStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Primary != b.hosts[0] || len(st.Members) != 3 {
		t.Fatalf("status primary %q with %d members", st.Primary, len(st.Members))
	}
	if st.OplogWindowHours == nil || *st.OplogWindowHours != 2 {
		t.Errorf("oplog window %v, want 2h", st.OplogWindowHours)
	}
	var buf bytes.Buffer
	if err := st.Render(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "shorter than mongo.max_partition 24.0h") {
		t.Errorf("no oplog window warning (max_partition 24h, window 2h):\n%s", buf.String())
	}

	// A member down shows as unhealthy, with a warning.
	b.fake.SetDown(b.hosts[2], true)
	st, err = c.GetStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Members[2].Healthy || !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "not reachable") }) {
		t.Errorf("yaounde down: member %+v warnings %q", st.Members[2], st.Warnings)
	}
}

// deployedSet is a three-site replica set on the first backend, deployed at every
// site, and a connection to it.
func deployedSet(t *testing.T) (*backend, *sites.Topology, *Conn) {
	t.Helper()
	b := backends(3)[0].make(t)
	topo := topoOn(t, b, nil)
	deploySites(context.Background(), t, topo, "cloud", "douala", "yaounde")
	return b, topo, connTo(t, topo)
}

func TestDeclareAuthoritative(t *testing.T) {
	t.Parallel()
	b, topo, c := deployedSet(t)
	ctx := context.Background()
	cloud, douala, yaounde := b.hosts[0], b.hosts[1], b.hosts[2]

	// With the links up douala reaches the primary: nothing to force.
	if _, err := c.PlanAuthoritative(ctx, "douala"); !errors.Is(err, ErrNotNeeded) {
		t.Fatalf("authoritative with a primary reachable: %v, want ErrNotNeeded", err)
	}
	// Cut douala off: cloud+yaounde keep the primary and take a majority write.
	b.fake.Cut(douala, cloud)
	b.fake.Cut(douala, yaounde)
	if err := insertMajority(ctx, c, cloud, bson.D{{Key: "_id", Value: "majority-side"}}); err != nil {
		t.Fatal(err)
	}
	fp, err := c.PlanAuthoritative(ctx, "douala")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_ = fp.Render(&buf)
	out := buf.String()
	for _, want := range []string{"ROLLED BACK", "not merged", "a primary is running right now"} {
		if !strings.Contains(out, want) {
			t.Errorf("force plan does not say %q:\n%s", want, out)
		}
	}
	if !slices.Equal(fp.Keep, []string{douala}) || len(fp.Remove) != 2 {
		t.Errorf("keep %v remove %v", fp.Keep, fp.Remove)
	}
	if err := fp.Apply(ctx); err != nil {
		t.Fatal(err)
	}
	if b.fake.Primary() == "" || !slices.Contains([]string{douala, cloud}, b.fake.Primary()) {
		t.Fatalf("primary %q after the forced reconfig", b.fake.Primary())
	}
	if err := insertMajority(ctx, c, douala, bson.D{{Key: "_id", Value: "douala-forced"}}); err != nil {
		t.Fatalf("write at the forced primary: %v", err)
	}
	// Heal: cloud and yaounde adopt the forced config and are out of the set; the next
	// deploy re-adds them and the majority side's write is rolled back, not merged.
	b.fake.HealAll()
	deploySites(ctx, t, topo, "cloud", "yaounde")
	rolled := b.fake.RolledBack(cloud)
	if len(rolled) != 1 || lookupString(rolled[0], "_id") != "majority-side" {
		t.Errorf("cloud rolled back %v, want the majority side's write", rolled)
	}
	live, err := c.ReadLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if live.Config.Voters() != 3 {
		t.Errorf("%d voters after re-adding, want 3", live.Config.Voters())
	}
}

func lookupString(d bson.D, key string) string {
	for _, e := range d {
		if e.Key == key {
			s, _ := e.Value.(string)
			return s
		}
	}
	return ""
}

// TestSides: with douala cut off, an application at yaounde still writes (to the
// primary at the cloud, which it reaches), one at douala cannot; after the heal the
// write is visible from douala.
func TestSides(t *testing.T) {
	t.Parallel()
	b, _, c := deployedSet(t)
	ctx := context.Background()
	cloud, douala, yaounde := b.hosts[0], b.hosts[1], b.hosts[2]
	b.fake.Cut(douala, cloud)
	b.fake.Cut(douala, yaounde)
	run := "mg-run"
	idY, idD := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	if err := c.Side("yaounde").Insert(ctx, idY, run, 1); err != nil {
		t.Fatalf("yaounde (majority side) could not write: %v", err)
	}
	if err := c.Side("douala").Insert(ctx, idD, run, 1); !errors.Is(err, ErrNoPrimary) {
		t.Fatalf("douala (cut off) write: %v, want ErrNoPrimary", err)
	}
	b.fake.HealAll()
	ids, err := c.Side("douala").IDs(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if !ids[idY] || ids[idD] || len(ids) != 1 {
		t.Errorf("after the heal douala sees %v; want exactly yaounde's %s", ids, idY)
	}
}
