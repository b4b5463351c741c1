package swarmfault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/drill"
)

// configStore is a swarm's configs in memory, with swarm's rules: names are unique
// (a second create conflicts), data is immutable, an update must name the current
// version. refuse makes every call fail like an engine that is not a manager. The
// journal runs against real swarms in drill/live's TestLabDrillHealAfterKill.
type configStore struct {
	mu      sync.Mutex
	configs map[string]swarm.Config // by ID
	next    int
	refuse  error
	updates int
}

func newConfigStore() *configStore { return &configStore{configs: map[string]swarm.Config{}} }

func (s *configStore) find(idOrName string) (swarm.Config, bool) {
	for _, c := range s.configs {
		if c.ID == idOrName || c.Spec.Name == idOrName {
			return c, true
		}
	}
	return swarm.Config{}, false
}

type notFound struct{ error }

func (notFound) NotFound() {}

func (s *configStore) ConfigCreate(_ context.Context, o client.ConfigCreateOptions) (client.ConfigCreateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != nil {
		return client.ConfigCreateResult{}, s.refuse
	}
	if _, ok := s.find(o.Spec.Name); ok {
		return client.ConfigCreateResult{}, fmt.Errorf("config %s already exists (conflict)", o.Spec.Name)
	}
	s.next++
	id := fmt.Sprintf("cfg%d", s.next)
	spec := o.Spec
	spec.Labels = map[string]string{}
	for k, v := range o.Spec.Labels {
		spec.Labels[k] = v
	}
	s.configs[id] = swarm.Config{ID: id, Meta: swarm.Meta{Version: swarm.Version{Index: 1}}, Spec: spec}
	return client.ConfigCreateResult{ID: id}, nil
}

func (s *configStore) ConfigList(_ context.Context, o client.ConfigListOptions) (client.ConfigListResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != nil {
		return client.ConfigListResult{}, s.refuse
	}
	var res client.ConfigListResult
	for _, c := range s.configs {
		ok := true
		for l := range o.Filters["label"] {
			_, has := c.Spec.Labels[l]
			ok = ok && has
		}
		if ok {
			c.Spec.Data = nil // like docker config ls, which leaves the data out
			res.Items = append(res.Items, c)
		}
	}
	return res, nil
}

func (s *configStore) ConfigInspect(_ context.Context, id string, _ client.ConfigInspectOptions) (client.ConfigInspectResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.find(id)
	if !ok {
		return client.ConfigInspectResult{}, notFound{fmt.Errorf("config %s not found", id)}
	}
	return client.ConfigInspectResult{Config: c}, nil
}

func (s *configStore) ConfigUpdate(_ context.Context, id string, o client.ConfigUpdateOptions) (client.ConfigUpdateResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.find(id)
	switch {
	case !ok:
		return client.ConfigUpdateResult{}, notFound{fmt.Errorf("config %s not found", id)}
	case o.Version.Index != c.Version.Index:
		return client.ConfigUpdateResult{}, errors.New("update out of sequence")
	case string(o.Spec.Data) != string(c.Spec.Data):
		return client.ConfigUpdateResult{}, errors.New("only updates to Labels are allowed")
	}
	c.Spec.Labels = o.Spec.Labels
	c.Version.Index++
	s.configs[c.ID] = c
	s.updates++
	return client.ConfigUpdateResult{}, nil
}

func (s *configStore) ConfigRemove(_ context.Context, id string, _ client.ConfigRemoveOptions) (client.ConfigRemoveResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.find(id)
	if !ok {
		return client.ConfigRemoveResult{}, notFound{fmt.Errorf("config %s not found", id)}
	}
	delete(s.configs, c.ID)
	return client.ConfigRemoveResult{}, nil
}

func (s *configStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.configs)
}

func partitionRecord() drill.Record {
	two := uint64(2)
	return drill.Record{Run: "dr-0193a1b2c3d4e", Drill: "partition", Env: "lab", Site: "douala",
		Started: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), Host: "some-other-host", PID: 4242, Owner: "ops@some-other-host pid 4242",
		Faults: []drill.FaultRecord{
			{Kind: drill.RecordLink, What: "tunnel douala-cloud cut", Sites: []string{"douala", "cloud"}, Link: "douala-cloud"},
			{Kind: drill.RecordService, What: "service postgres_db at douala scaled to 0 (from 2)", Sites: []string{"douala"}, Site: "douala", Service: "postgres_db", Replicas: &two},
		}}
}

// TestJournalKeepsTheRecordInEveryTouchedSwarm: Open writes the record into the
// swarm of each site its faults touch, every copy reads back as written, Close
// removes them all.
func TestJournalKeepsTheRecordInEveryTouchedSwarm(t *testing.T) {
	douala, cloud, yaounde := newConfigStore(), newConfigStore(), newConfigStore()
	j := &Journal{Engines: map[string]ConfigEngine{"douala": douala, "cloud": cloud, "yaounde": yaounde}}
	rec := partitionRecord()
	if err := j.Open(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if douala.count() != 1 || cloud.count() != 1 || yaounde.count() != 0 {
		t.Fatalf("records: douala %d cloud %d yaounde %d, want 1 1 0", douala.count(), cloud.count(), yaounde.count())
	}
	for site, e := range map[string]*configStore{"douala": douala, "cloud": cloud} {
		left, err := ReadRecords(context.Background(), site, e)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 1 || left[0].In != site || left[0].Heartbeat.IsZero() {
			t.Fatalf("%s: %+v", site, left)
		}
		got, _ := json.Marshal(left[0].Record)
		want, _ := json.Marshal(rec)
		if string(got) != string(want) {
			t.Fatalf("%s: record read back\n%s\nwant\n%s", site, got, want)
		}
		// Another host's drill, silent for a minute: killed.
		msg := left[0].Message(time.Now().Add(time.Minute))
		for _, w := range []string{"partition drill of douala", "was killed at", "tunnel douala-cloud cut, service postgres_db at douala scaled to 0 (from 2)", "run `sitectl drill heal`"} {
			if !strings.Contains(msg, w) {
				t.Errorf("message %q does not say %q", msg, w)
			}
		}
	}
	if err := j.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if douala.count()+cloud.count() != 0 {
		t.Fatal("Close left a record")
	}
	if err := j.Close(context.Background(), false); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

// TestJournalOpenIsAllOrNothing: a swarm that cannot take the record fails Open,
// naming the site, and the copies already written are removed.
func TestJournalOpenIsAllOrNothing(t *testing.T) {
	// The sites are written in name order: cloud's copy first, then douala refuses.
	douala, cloud := newConfigStore(), newConfigStore()
	douala.refuse = errors.New("This node is not a swarm manager.") //nolint:revive // Docker's message, verbatim
	j := &Journal{Engines: map[string]ConfigEngine{"douala": douala, "cloud": cloud}}
	err := j.Open(context.Background(), partitionRecord())
	if err == nil || !strings.Contains(err.Error(), "douala: write the fault record into its swarm: This node is not a swarm manager") {
		t.Fatalf("Open: %v", err)
	}
	if cloud.count() != 0 {
		t.Fatal("cloud's copy stayed after Open failed")
	}
	j = &Journal{Engines: map[string]ConfigEngine{"douala": newConfigStore()}}
	if err := j.Open(context.Background(), partitionRecord()); err == nil || !strings.Contains(err.Error(), "no engine for cloud") {
		t.Fatalf("Open without cloud's engine: %v", err)
	}
}

// TestJournalHeartbeat: a running drill refreshes its records; the data stays.
func TestJournalHeartbeat(t *testing.T) {
	defer func(d time.Duration) { RecordRefresh = d }(RecordRefresh)
	RecordRefresh = 5 * time.Millisecond
	douala, cloud := newConfigStore(), newConfigStore()
	j := &Journal{Engines: map[string]ConfigEngine{"douala": douala, "cloud": cloud}}
	if err := j.Open(context.Background(), partitionRecord()); err != nil {
		t.Fatal(err)
	}
	first, _ := ReadRecords(context.Background(), "douala", douala)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		douala.mu.Lock()
		n := douala.updates
		douala.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat within 5s")
		}
	}
	if err := j.Close(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if !first[0].Heartbeat.Before(time.Now()) {
		t.Fatal("heartbeat in the future")
	}
}

// TestLeftAlive: whether the drill that wrote a record may still run.
func TestLeftAlive(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name      string
		host      string
		pid       int
		heartbeat time.Time
		alive     bool
	}{
		{"this host, process running", host, os.Getppid(), now.Add(-time.Hour), true},
		{"this host, process gone (SIGKILL), fresh heartbeat", host, dead.Process.Pid, now, false},
		{"other host, refreshed 5s ago", "elsewhere", 1, now.Add(-5 * time.Second), true},
		{"other host, silent for a minute", "elsewhere", 1, now.Add(-time.Minute), false},
		{"other host, never refreshed", "elsewhere", 1, time.Time{}, false},
	} {
		l := Left{Record: partitionRecord(), Heartbeat: tc.heartbeat}
		l.Host, l.PID = tc.host, tc.pid
		alive, why := l.Alive(now)
		if alive != tc.alive {
			t.Errorf("%s: alive %t (%s), want %t", tc.name, alive, why, tc.alive)
		}
		msg := l.Message(now)
		if tc.alive != strings.Contains(msg, "is running since") || tc.alive == strings.Contains(msg, "was killed at") {
			t.Errorf("%s: message %q", tc.name, msg)
		}
	}
}

// TestRecordedFaultsHealWithoutTheirDrill: what Record reads is what the fault
// rebuilt from the record puts back (a service's replica count, a node's
// availability), with nothing else remembered.
func TestRecordedFaultsHealWithoutTheirDrill(t *testing.T) {
	ctx := context.Background()
	s := newSwarm(0, task("t1", "n-ready", swarm.TaskStateRunning), task("t2", "n-ready", swarm.TaskStateRunning))
	down := &ServiceDown{Site: "douala", Service: "postgres_db", Engine: s}
	rec, err := down.Record(ctx)
	if err != nil || rec.Replicas == nil || *rec.Replicas != 2 || rec.Kind != drill.RecordService || rec.What != "service postgres_db at douala scaled to 0 (from 2)" {
		t.Fatalf("record %+v, %v", rec, err)
	}
	if err := inject(down); err != nil {
		t.Fatal(err)
	}
	if s.replicas != 0 {
		t.Fatalf("replicas %d after Inject", s.replicas)
	}
	// The drill is gone; a new fault is rebuilt from the JSON record alone.
	b, _ := json.Marshal(rec)
	var back drill.FaultRecord
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	again, err := ServiceDownFrom(back, s)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	for i := range s.tasks { // the swarm starts the tasks again
		s.tasks[i].DesiredState, s.tasks[i].Status.State = swarm.TaskStateRunning, swarm.TaskStateRunning
	}
	delete(s.stopping, "t1")
	delete(s.stopping, "t2")
	s.mu.Unlock()
	if err := again.Remove(ctx); err != nil || s.replicas != 2 {
		t.Fatalf("heal from the record: replicas %d, %v", s.replicas, err)
	}
	if err := again.Remove(ctx); err != nil || s.replicas != 2 {
		t.Fatalf("a second heal: replicas %d, %v", s.replicas, err)
	}
	if _, err := (&ServiceDown{Site: "douala", Service: "postgres_db", Engine: s}).Record(ctx); err != nil {
		t.Fatal(err)
	}

	// A service already at 0 replicas (left by a dead drill) is refused, naming heal.
	s.replicas = 0
	if _, err := (&ServiceDown{Site: "douala", Service: "postgres_db", Engine: s}).Record(ctx); err == nil || !strings.Contains(err.Error(), "sitectl drill heal") {
		t.Fatalf("record of a service at 0 replicas: %v", err)
	}

	n := newSwarm(0)
	drain := &NodeDrain{Site: "douala", Node: "db1", Engine: n}
	nrec, err := drain.Record(ctx)
	if err != nil || nrec.NodeID != "n-ready" || nrec.Availability != "active" {
		t.Fatalf("node record %+v, %v", nrec, err)
	}
	if err := inject(drain); err != nil {
		t.Fatal(err)
	}
	back = drill.FaultRecord{}
	b, _ = json.Marshal(nrec)
	_ = json.Unmarshal(b, &back)
	nd, err := NodeDrainFrom(back, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Remove(ctx); err != nil || n.nodes[0].Spec.Availability != swarm.NodeAvailabilityActive {
		t.Fatalf("node after heal from the record: %q, %v", n.nodes[0].Spec.Availability, err)
	}
	if _, err := NodeDrainFrom(drill.FaultRecord{Kind: drill.RecordNode, What: "node x drained"}, n); err == nil {
		t.Fatal("a node record without the node's ID was accepted")
	}
}
