package drill

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/replication/keys"
)

// MongoSide is the replica set as seen from one site (a client that reaches only the
// members on that site's side of the cut).
type MongoSide interface {
	Site() string
	// InsertMajority writes one document with write concern majority (and a bounded
	// wtimeout); nil means a majority of voting members acknowledged it.
	InsertMajority(ctx context.Context, r Row) error
	// IDs returns the ids of run's documents a majority read sees.
	IDs(ctx context.Context, run string) (map[uuid.UUID]bool, error)
}

// MongoSideResult says whether one side of the cut could take majority writes.
type MongoSideResult struct {
	Sites    []string `json:"sites"`
	Votes    int      `json:"votes"`
	Majority bool     `json:"majority"` // expected to elect a primary and write
	Acked    int      `json:"acked"`
	Failed   int      `json:"failed"`
	Error    string   `json:"first_error,omitempty"`
	Outcome  string   `json:"outcome"`
}

// MongoResult is the MongoDB part of a partition drill.
type MongoResult struct {
	Sides  []MongoSideResult `json:"sides"`
	Lost   int               `json:"lost"`
	Passed bool              `json:"passed"`
	Detail string            `json:"detail"`
}

type mongoAttempt struct {
	side  string
	row   Row
	acked bool
	err   string
}

// mongoAttemptsPerSide bounds the majority writes tried per side: enough to show who
// can write, without a minority side spending the whole cut in write timeouts.
const mongoAttemptsPerSide = 20

// mongoGiveUp is how many refused writes in a row end a member's attempts.
const mongoGiveUp = 3

// writeMongo tries majority writes from every side during the cut, spread over half
// of it (a majority side may need an election first).
func (p *Drill) writeMongo(ctx context.Context, s Settings) []mongoAttempt {
	var mu sync.Mutex
	var out []mongoAttempt
	var wg sync.WaitGroup
	interval := s.Duration / 2 / mongoAttemptsPerSide
	for _, side := range p.Mongo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.catch()
			gen, err := keys.NewGenerator(side.Site())
			if err != nil {
				return
			}
			failedInARow := 0
			// A member that keeps refusing (a secondary, a minority) has shown it.
			for i := 0; i < mongoAttemptsPerSide && ctx.Err() == nil && failedInARow < mongoGiveUp; i++ {
				k, err := gen.New()
				if err != nil {
					return
				}
				row := Row{ID: k.ID, Site: side.Site(), Run: p.RunID, Seq: i}
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = side.InsertMajority(wctx, row)
				cancel()
				a := mongoAttempt{side: side.Site(), row: row, acked: err == nil}
				failedInARow++
				if err != nil {
					a.err = err.Error()
				} else {
					failedInARow = 0
				}
				mu.Lock()
				out = append(out, a)
				mu.Unlock()
				p.sleep(interval)
			}
		}()
	}
	wg.Wait()
	p.rethrow()
	return out
}

// verifyMongo checks after the heal that every majority-acknowledged write survived,
// and reports which side could write: the side without a majority of votes must not
// have acknowledged a majority write.
func (p *Drill) verifyMongo(ctx context.Context, attempts []mongoAttempt) *MongoResult {
	res := &MongoResult{Passed: true}
	votes := map[string]int{}
	total := 0
	for _, site := range p.Topo.Sites {
		for _, m := range site.Mongo.Members {
			votes[site.Name] += m.VotesOrDefault()
			total += m.VotesOrDefault()
		}
	}
	sideOf := map[string]int{}
	for i, side := range Sides(p.Topo, p.Links) {
		for _, s := range side {
			sideOf[s] = i
		}
	}
	bySide := map[int]*MongoSideResult{}
	for _, a := range attempts {
		i := sideOf[a.side]
		r := bySide[i]
		if r == nil {
			r = &MongoSideResult{}
			for _, s := range Sides(p.Topo, p.Links)[i] {
				r.Sites = append(r.Sites, s)
				r.Votes += votes[s]
			}
			r.Majority = 2*r.Votes > total
			bySide[i] = r
		}
		if a.acked {
			r.Acked++
		} else {
			r.Failed++
			if r.Error == "" {
				r.Error = a.err
			}
		}
	}
	idx := make([]int, 0, len(bySide))
	for i := range bySide {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var problems []string
	for _, i := range idx {
		r := bySide[i]
		switch {
		case r.Majority && r.Acked > 0:
			r.Outcome = "wrote (majority side, expected)"
		case r.Majority:
			r.Outcome = "could not write although it holds a majority (no primary elected during the cut?)"
		case r.Acked == 0:
			r.Outcome = "could not write (minority side: expected, correct)"
		default:
			r.Outcome = "acknowledged majority writes without a majority of votes"
			problems = append(problems, fmt.Sprintf("%s acknowledged %d majority write(s) without a majority", strings.Join(r.Sites, "+"), r.Acked))
		}
		res.Sides = append(res.Sides, *r)
	}
	seen, readErr := p.readMongoBack(ctx)
	if seen == nil {
		res.Passed = false
		res.Detail = fmt.Sprintf("could not read the documents back after the heal: %v", readErr)
		return res
	}
	acked := 0
	for _, a := range attempts {
		if a.acked {
			acked++
			if !seen[a.row.ID] {
				res.Lost++
			}
		}
	}
	if res.Lost > 0 {
		problems = append(problems, fmt.Sprintf("%d majority-acknowledged write(s) lost", res.Lost))
	}
	res.Passed = len(problems) == 0
	if res.Passed {
		res.Detail = fmt.Sprintf("lost=0 of %d majority-acknowledged write(s)", acked)
	} else {
		res.Detail = strings.Join(problems, "; ")
	}
	return res
}

// readMongoBack reads the run's documents back through any side that answers
// (after the heal every side should), retrying until the convergence deadline.
func (p *Drill) readMongoBack(ctx context.Context) (map[uuid.UUID]bool, error) {
	var readErr error
	deadline := time.Now().Add(p.Settings.withDefaults().Converge)
	for time.Now().Before(deadline) {
		for _, side := range p.Mongo {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ids, err := side.IDs(rctx, p.RunID)
			cancel()
			if err == nil {
				return ids, nil
			}
			readErr = err
		}
		p.sleep(time.Second)
	}
	return nil, readErr
}
