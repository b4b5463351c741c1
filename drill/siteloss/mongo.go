package siteloss

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/replication/mongo"
)

// Mongo is the lost site's MongoDB part: its members are lost with its database
// and rebuilt after it (what `sitectl site rebuild --mongo` adds: votes removed one
// reconfig at a time, the empty members' initial sync waited for, votes restored).
type Mongo struct {
	// Loser destroys the site's mongod members and their data, and starts empty
	// ones at the same addresses.
	Loser Loser
	// Plan plans the MongoDB part of the site's rebuild on the live set (it must
	// not refuse a member that answers again: the drill's members come back empty
	// before their rebuild runs).
	Plan func(ctx context.Context) (*mongo.Rebuild, error)
}

// MongoReport is what the MongoDB part did.
type MongoReport struct {
	LostAt     time.Time `json:"lost_at"`
	ReplacedAt time.Time `json:"replaced_at,omitzero"`
	RebuiltAt  time.Time `json:"rebuilt_at,omitzero"`
	// Seconds is the rebuild's own time (plan and steps); RTOSeconds the loss to
	// the members caught up and voting again.
	Seconds    float64        `json:"rebuild_seconds,omitempty"`
	RTOSeconds float64        `json:"rto_seconds,omitempty"`
	Rebuild    *mongo.Rebuild `json:"rebuild,omitempty"`
	Error      string         `json:"error,omitempty"`

	lost, replaced, rebuilt bool
}

// loseMongo destroys the site's members (after its database).
func (r *Report) loseMongo(ctx context.Context) error {
	m := r.opts.Mongo
	if m == nil {
		return nil
	}
	r.Mongo = &MongoReport{}
	r.Mongo.lost = true
	r.status("lose", "destroying %s's MongoDB members", r.Site)
	if err := m.Loser.Lose(ctx, r.Site); err != nil {
		return fmt.Errorf("lose %s's MongoDB members: %w", r.Site, err)
	}
	r.Mongo.LostAt = time.Now().UTC()
	// Planned while the members are gone, as an operator would: the plan reads
	// the live set (a primary reachable or not) and refuses members that answer.
	rb, err := m.Plan(ctx)
	if err != nil {
		r.Mongo.Error = err.Error()
		return fmt.Errorf("plan the mongo rebuild of %s: %w", r.Site, err)
	}
	r.Mongo.Rebuild = rb
	return nil
}

// replaceMongo starts empty members in the lost ones' place.
func (r *Report) replaceMongo(ctx context.Context) error {
	if r.Mongo == nil || r.Mongo.replaced {
		return nil
	}
	r.status("lose", "starting empty MongoDB members for %s", r.Site)
	if err := r.opts.Mongo.Loser.Replace(ctx, r.Site); err != nil {
		return fmt.Errorf("start %s's MongoDB members again: %w", r.Site, err)
	}
	r.Mongo.replaced, r.Mongo.ReplacedAt = true, time.Now().UTC()
	return nil
}

// rebuildMongo runs the MongoDB part of the site's rebuild.
func (r *Report) rebuildMongo(ctx context.Context) error {
	mr := r.Mongo
	if mr == nil || mr.rebuilt {
		return nil
	}
	began := time.Now()
	err := r.runMongo(ctx, mr)
	mr.Seconds = time.Since(began).Seconds()
	if err != nil {
		mr.Error = err.Error()
		return err
	}
	mr.rebuilt, mr.RebuiltAt = true, time.Now().UTC()
	mr.RTOSeconds = mr.RebuiltAt.Sub(mr.LostAt).Seconds()
	return nil
}

func (r *Report) runMongo(ctx context.Context, mr *MongoReport) error {
	r.status("mongo", "rebuilding %s's MongoDB members", r.Site)
	if mr.Rebuild == nil {
		// Recover after a stop before the plan: plan now. A member MongoDB
		// already resynced by itself leaves nothing to rebuild.
		rb, err := r.opts.Mongo.Plan(ctx)
		if errors.Is(err, mongo.ErrSiteAnswers) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("plan the mongo rebuild of %s: %w", r.Site, err)
		}
		mr.Rebuild = rb
	}
	if _, err := plan.Apply(ctx, mr.Rebuild.Steps, nil); err != nil {
		return fmt.Errorf("mongo rebuild of %s (re-run sitectl site rebuild %s --mongo to resume): %w", r.Site, r.Site, err)
	}
	return nil
}
