package swarmfault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/sitectl/sitectl/drill"
)

// A drill's fault record lives in the swarm of every site its faults touch, as a
// swarm config named RecordPrefix+run (the way the deploy lock lives in a config):
// written before the first fault is injected, refreshed (a heartbeat label) while
// the drill runs, removed once every fault is removed. The swarm is where it
// survives the drill's process and every later command can read it: plan, deploy
// and status reach each site's manager anyway; the managers stay reachable during
// every fault a drill injects (sitectl reaches them over the management path, not
// through the tunnels a partition cuts; a db-down or node-loss leaves the manager
// up); and it needs nothing outside the sites (a file on the operator's machine
// would be invisible to a CI job, and the hub's database is down in a db-down of
// the hub).
const (
	RecordPrefix = "sitectl-drill-"

	labelRecord    = "sitectl.drill"
	labelRun       = "sitectl.drill.run"
	labelHeartbeat = "sitectl.drill.heartbeat"
)

// Record timing: a running drill refreshes its records every RecordRefresh; one not
// refreshed for RecordStale belongs to a drill that is gone.
var (
	RecordRefresh = 10 * time.Second
	RecordStale   = 45 * time.Second
)

// ConfigEngine is the part of a manager's Docker API the fault records use;
// *client.Client has it.
type ConfigEngine interface {
	ConfigCreate(ctx context.Context, options client.ConfigCreateOptions) (client.ConfigCreateResult, error)
	ConfigList(ctx context.Context, options client.ConfigListOptions) (client.ConfigListResult, error)
	ConfigInspect(ctx context.Context, id string, options client.ConfigInspectOptions) (client.ConfigInspectResult, error)
	ConfigUpdate(ctx context.Context, id string, options client.ConfigUpdateOptions) (client.ConfigUpdateResult, error)
	ConfigRemove(ctx context.Context, id string, options client.ConfigRemoveOptions) (client.ConfigRemoveResult, error)
}

// Journal keeps a drill's record in the swarms of the sites its faults touch.
type Journal struct {
	// Engines are the managers of the sites, by site name.
	Engines map[string]ConfigEngine

	mu   sync.Mutex
	ids  map[string]string // site → config ID
	stop chan struct{}
	done chan struct{}
}

var _ drill.Journal = (*Journal)(nil)

// Open writes the record into every touched site's swarm; when one refuses, the
// ones already written are removed again and the drill injects nothing.
func (j *Journal) Open(ctx context.Context, r drill.Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	spec := swarm.ConfigSpec{Annotations: swarm.Annotations{Name: RecordPrefix + r.Run,
		Labels: map[string]string{labelRecord: "record", labelRun: r.Run, labelHeartbeat: now}}, Data: data}
	j.mu.Lock()
	j.ids = map[string]string{}
	j.mu.Unlock()
	for _, site := range r.Sites() {
		e := j.Engines[site]
		if e == nil {
			err = fmt.Errorf("no engine for %s, whose swarm must hold the record", site)
		} else {
			var res client.ConfigCreateResult
			res, err = e.ConfigCreate(ctx, client.ConfigCreateOptions{Spec: spec})
			if err == nil {
				j.mu.Lock()
				j.ids[site] = res.ID
				j.mu.Unlock()
				continue
			}
			err = fmt.Errorf("%s: write the fault record into its swarm: %w", site, err)
		}
		_ = j.remove(context.WithoutCancel(ctx))
		return err
	}
	j.stop, j.done = make(chan struct{}), make(chan struct{})
	go j.refresh()
	return nil
}

// Close stops the heartbeat and removes the record from every swarm, or with keep
// leaves it there (its drill is over: the heartbeat stops).
func (j *Journal) Close(ctx context.Context, keep bool) error {
	if j.stop != nil {
		close(j.stop)
		<-j.done
		j.stop = nil
	}
	if keep {
		return nil
	}
	return j.remove(ctx)
}

func (j *Journal) remove(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	for _, site := range slices.Sorted(maps.Keys(j.ids)) {
		if _, err := j.Engines[site].ConfigRemove(ctx, j.ids[site], client.ConfigRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("%s: remove the fault record: %w", site, err))
			continue
		}
		delete(j.ids, site)
	}
	return errors.Join(errs...)
}

func (j *Journal) refresh() {
	defer close(j.done)
	t := time.NewTicker(RecordRefresh)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			j.mu.Lock()
			ids := map[string]string{}
			for k, v := range j.ids {
				ids[k] = v
			}
			j.mu.Unlock()
			for site, id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = heartbeat(ctx, j.Engines[site], id)
				cancel()
			}
		}
	}
}

func heartbeat(ctx context.Context, e ConfigEngine, id string) error {
	cur, err := e.ConfigInspect(ctx, id, client.ConfigInspectOptions{})
	if err != nil {
		return err
	}
	spec := cur.Config.Spec
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[labelHeartbeat] = time.Now().UTC().Format(time.RFC3339Nano)
	_, err = e.ConfigUpdate(ctx, id, client.ConfigUpdateOptions{Version: cur.Config.Version, Spec: spec})
	return err
}

// Left is a drill's record found in a site's swarm: a drill running now, or one
// that ended without healing (killed, or its heal failed).
type Left struct {
	drill.Record
	// In is the site whose swarm holds this copy; ConfigID names it there.
	In       string
	ConfigID string
	// Heartbeat is the last time the drill refreshed the record.
	Heartbeat time.Time
}

// ReadRecords returns the drill records in one site's swarm.
func ReadRecords(ctx context.Context, site string, e ConfigEngine) ([]Left, error) {
	res, err := e.ConfigList(ctx, client.ConfigListOptions{Filters: make(client.Filters).Add("label", labelRecord)})
	if err != nil {
		return nil, fmt.Errorf("%s: read drill records: %w", site, err)
	}
	var out []Left
	for _, c := range res.Items {
		if !strings.HasPrefix(c.Spec.Name, RecordPrefix) {
			continue
		}
		data := c.Spec.Data
		if len(data) == 0 { // a list may leave the data out
			full, err := e.ConfigInspect(ctx, c.ID, client.ConfigInspectOptions{})
			if err != nil {
				return nil, fmt.Errorf("%s: read drill record %s: %w", site, c.Spec.Name, err)
			}
			data = full.Config.Spec.Data
		}
		l := Left{In: site, ConfigID: c.ID}
		if err := json.Unmarshal(data, &l.Record); err != nil {
			return nil, fmt.Errorf("%s: drill record %s is not one sitectl wrote (%v): inspect it with docker config inspect %s, remove it with docker config rm %s",
				site, c.Spec.Name, err, c.Spec.Name, c.Spec.Name)
		}
		l.Heartbeat, _ = time.Parse(time.RFC3339Nano, c.Spec.Labels[labelHeartbeat])
		out = append(out, l)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Started.Before(out[b].Started) })
	return out, nil
}

// Alive reports whether the drill that wrote the record may still run, and why: its
// process exists on this host, or (another host) it refreshed the record within
// RecordStale.
func (l Left) Alive(now time.Time) (bool, string) {
	host, _ := os.Hostname()
	if l.Host == host && l.PID > 0 {
		if l.PID == os.Getpid() {
			return true, "this process"
		}
		if err := syscall.Kill(l.PID, 0); err == nil || errors.Is(err, syscall.EPERM) {
			return true, fmt.Sprintf("its process %d is running on this host", l.PID)
		}
		return false, ""
	}
	if !l.Heartbeat.IsZero() && now.Sub(l.Heartbeat) < RecordStale {
		return true, fmt.Sprintf("it refreshed its record %s ago from %s", now.Sub(l.Heartbeat).Round(time.Second), l.Host)
	}
	return false, ""
}

// Message says what the record means for an operator.
func (l Left) Message(now time.Time) string {
	what := l.Drill + " drill"
	if l.Site != "" {
		what += " of " + l.Site
	}
	what += fmt.Sprintf(" (run %s, %s)", l.Run, l.Owner)
	if alive, why := l.Alive(now); alive {
		return fmt.Sprintf("a %s is running since %s (%s); it holds: %s", what, l.Started.UTC().Format(time.RFC3339), why, l.Summary())
	}
	at := l.Heartbeat
	if at.IsZero() {
		at = l.Started
	}
	return fmt.Sprintf("a %s was killed at %s (its last sign of life) and left: %s; run `sitectl drill heal`", what, at.UTC().Format(time.RFC3339), l.Summary())
}

// RemoveRecord removes one copy of a record.
func RemoveRecord(ctx context.Context, e ConfigEngine, id string) error {
	if _, err := e.ConfigRemove(ctx, id, client.ConfigRemoveOptions{}); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

func isNotFound(err error) bool {
	var c interface{ NotFound() }
	return errors.As(err, &c) || strings.Contains(strings.ToLower(err.Error()), "not found")
}
