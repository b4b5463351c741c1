package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// pollEvery is how often the rebuild's waits re-read the set.
var pollEvery = 250 * time.Millisecond

// syncStatusReply is the part of replSetGetStatus the rebuild's waits read.
type syncStatusReply struct {
	Members []struct {
		Name     string `bson:"name"`
		StateStr string `bson:"stateStr"`
		Optime   struct {
			TS bson.Timestamp `bson:"ts"`
		} `bson:"optime"`
		OptimeDate bson.DateTime `bson:"optimeDate"`
	} `bson:"members"`
	// InitialSyncStatus is returned by a member in initial sync (STARTUP2) about
	// itself (MongoDB 4.4+).
	InitialSyncStatus *struct {
		ApproxTotalDataSize    int64 `bson:"approxTotalDataSize"`
		ApproxTotalBytesCopied int64 `bson:"approxTotalBytesCopied"`
	} `bson:"initialSyncStatus"`
}

// waitAnswers waits until the member's mongod answers (the site's mongo stack is
// back); it fails after opts.Wait without an answer.
func (r *Rebuild) waitAnswers(ctx context.Context, host string) error {
	start := time.Now()
	for {
		v := r.conn.Hello(ctx, host)
		if v.Reachable {
			return nil
		}
		if time.Since(start) > r.opts.Wait {
			return fmt.Errorf("mongo rebuild %s: member %s has not answered for %s (%s): deploy the site's mongo stack on its new machines (sitectl deploy --site %s), then re-run; the steps done so far are kept", r.Site, host, r.opts.Wait, v.Error, r.Site)
		}
		r.say(host, "waiting for its mongod to answer ("+v.Error+")")
		if err := sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// waitCaughtUp waits until the primary reports the member SECONDARY (or PRIMARY)
// with an optime at least the primary's when the wait began, reporting its state,
// its initial sync's bytes and its lag. It fails when nothing moves for opts.Wait.
func (r *Rebuild) waitCaughtUp(ctx context.Context, host string) error {
	var target bson.Timestamp
	lastMove, lastSeen := time.Now(), ""
	for {
		seen, done, err := r.syncState(ctx, host, &target)
		if err != nil {
			seen = "not readable: " + err.Error()
		}
		if done {
			r.say(host, "caught up: "+seen)
			return nil
		}
		if seen != lastSeen {
			lastMove, lastSeen = time.Now(), seen
			r.say(host, seen)
		}
		if time.Since(lastMove) > r.opts.Wait {
			return fmt.Errorf("mongo rebuild %s: member %s made no progress for %s (%s): is its mongod up and does it reach the other sites' members? Re-run to resume", r.Site, host, r.opts.Wait, seen)
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// syncState reads where the member is: a line for progress, and whether it has
// caught up with target (set from the primary's optime on the first read).
func (r *Rebuild) syncState(ctx context.Context, host string, target *bson.Timestamp) (string, bool, error) {
	live, err := r.conn.ReadLive(ctx)
	if err != nil {
		return "", false, err
	}
	if live.Primary == "" {
		return "waiting for a primary to be elected", false, nil
	}
	var st syncStatusReply
	if err := r.conn.Run(ctx, live.Primary, bson.D{{Key: "replSetGetStatus", Value: 1}}, &st); err != nil {
		return "", false, err
	}
	var pTS, mTS bson.Timestamp
	var pDate, mDate time.Time
	state := "not in the primary's config"
	for _, m := range st.Members {
		switch m.Name {
		case live.Primary:
			pTS, pDate = m.Optime.TS, m.OptimeDate.Time()
		case host:
			mTS, mDate, state = m.Optime.TS, m.OptimeDate.Time(), m.StateStr
		}
	}
	if host == live.Primary {
		mTS, mDate, state = pTS, pDate, "PRIMARY"
	}
	if target.IsZero() {
		*target = pTS
	}
	switch state {
	case "SECONDARY", "PRIMARY":
		lag := max(pDate.Sub(mDate), 0).Round(time.Second)
		return fmt.Sprintf("%s, %s behind the primary %s", state, lag, live.Primary), !target.After(mTS), nil
	case "STARTUP2":
		var own syncStatusReply
		if err := r.conn.Run(ctx, host, bson.D{{Key: "replSetGetStatus", Value: 1}}, &own); err == nil && own.InitialSyncStatus != nil {
			is := own.InitialSyncStatus
			pct := 100.0
			if is.ApproxTotalDataSize > 0 {
				pct = 100 * float64(is.ApproxTotalBytesCopied) / float64(is.ApproxTotalDataSize)
			}
			return fmt.Sprintf("STARTUP2 (initial sync): %d of %d bytes copied (%.0f%%)", is.ApproxTotalBytesCopied, is.ApproxTotalDataSize, pct), false, nil
		}
		return "STARTUP2 (initial sync)", false, nil
	}
	return state, false, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
