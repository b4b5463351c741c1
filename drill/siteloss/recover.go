package siteloss

import (
	"context"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/replication/postgres"
)

// Recovery is what Recover did after a drill that stopped between the loss and
// the verified rebuild.
type Recovery struct {
	// Replaced: the site's empty database was started by the recovery (the drill
	// stopped before it did).
	Replaced bool `json:"replaced"`
	// Kept: the loss stopped before the data was deleted; the database came back
	// with it and needs no rebuild.
	Kept bool `json:"kept,omitempty"`
	// Rebuilt: the site's rebuild ran (or resumed) to its end and verified.
	Rebuilt bool `json:"rebuilt"`
	// MongoRebuilt: the MongoDB part ran (or resumed) to its end.
	MongoRebuilt bool    `json:"mongo_rebuilt,omitempty"`
	Seconds      float64 `json:"seconds"`
	Error        string  `json:"error,omitempty"`
}

// destroyer is a Loser that tells whether its Lose got as far as deleting the
// data (swarmfault.DBLoss).
type destroyer interface{ DataDestroyed() bool }

// NeedsRecovery reports whether the drill stopped between the loss and the end of
// the rebuild: the site's database may be down, empty or half rebuilt.
func (r *Report) NeedsRecovery() bool {
	return r.loseTried && (!r.rebuilt || r.Mongo != nil && r.Mongo.lost && !r.Mongo.rebuilt)
}

// Recover leaves the sites working after a drill that failed or was interrupted
// between the loss and the end of the rebuild: the site's empty database is
// started when the drill did not get that far, and its rebuild is run, or resumed
// (a rebuild that stopped half-way resumes and copies nothing twice), to its end.
// ctx should not be the drill's cancelled one: the caller bounds it. What was done
// is in r.Recovery.
func (r *Report) Recover(ctx context.Context) error {
	if !r.NeedsRecovery() {
		return nil
	}
	began := time.Now()
	rec := &Recovery{}
	r.Recovery = rec
	err := r.recover(ctx, rec)
	rec.Seconds = time.Since(began).Seconds()
	if err != nil {
		rec.Error = err.Error()
		return fmt.Errorf("%w: run sitectl site rebuild %s (it resumes)", err, r.Site)
	}
	return nil
}

func (r *Report) recover(ctx context.Context, rec *Recovery) error {
	if !r.rebuilt {
		if err := r.recoverPostgres(ctx, rec); err != nil {
			return err
		}
	}
	if r.Mongo == nil || !r.Mongo.lost || r.Mongo.rebuilt {
		return nil
	}
	if err := r.replaceMongo(ctx); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := r.rebuildMongo(ctx); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	rec.MongoRebuilt = true
	return nil
}

func (r *Report) recoverPostgres(ctx context.Context, rec *Recovery) error {
	if r.ReplacedAt.IsZero() {
		r.status("recover", "starting an empty database for %s", r.Site)
		if err := r.opts.Loser.Replace(ctx, r.Site); err != nil {
			return fmt.Errorf("recover: start %s's database again: %w", r.Site, err)
		}
		rec.Replaced = true
		r.ReplacedAt = time.Now().UTC()
	}
	if d, ok := r.opts.Loser.(destroyer); ok && !d.DataDestroyed() {
		r.status("recover", "%s's data was not deleted: its database is back with it, nothing to rebuild", r.Site)
		rec.Kept, r.rebuilt = true, true
		return nil
	}
	r.status("recover", "rebuilding %s so every site works again", r.Site)
	// A fresh session: the drill's pools may hold connections to the lost server.
	sess := postgres.NewSession(r.topo)
	defer sess.Close()
	rb, err := postgres.PlanRebuild(ctx, r.topo, sess, r.Site, postgres.RebuildOptions{Wait: r.opts.Wait, Progress: r.opts.Progress})
	if err != nil {
		return fmt.Errorf("recover: plan the rebuild of %s: %w", r.Site, err)
	}
	if err := rb.Run(ctx, nil); err != nil {
		return fmt.Errorf("recover: rebuild %s: %w", r.Site, err)
	}
	rec.Rebuilt, r.rebuilt = true, true
	return nil
}
