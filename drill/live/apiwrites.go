package live

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/replication/postgres"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/traffic"
)

// APITable is the table the API's POST /api/rows writes to (the lab's Django app,
// its ROWS_TABLE; sites/schema.sql makes it). Its rows carry their owner in the
// site column and a UUIDv7 key minted by the API, as the drill's rows do.
const APITable = "lab_rows"

// APIPlacement says where a row written through the API should be: at its owner,
// and, when the API's table is replicated (listed in postgres.tables), at every
// site the owner's rows reach through the flows.
func APIPlacement(topo *sites.Topology) drill.Placement {
	replicated := false
	for _, s := range topo.Sites {
		if s.HasStack("postgres") && slices.Contains(s.Postgres.Tables, APITable) {
			replicated = true
		}
	}
	if replicated {
		return drill.FlowPlacement(topo.Flows)
	}
	return func(owner, site string) bool { return owner == site }
}

// APIAttempts turns the writes the clients saw acknowledged into the drill's
// attempts: each row owned by the site whose API wrote it. An id that is not a
// UUID (an API answering something else) is reported by the verdict as a write
// nobody can find.
func APIAttempts(writes []traffic.Write) []drill.Attempt {
	out := make([]drill.Attempt, 0, len(writes))
	for _, w := range writes {
		id, err := uuid.Parse(w.ID)
		a := drill.Attempt{Row: drill.Row{ID: id, Site: w.Owner}, At: w.Owner, Acked: true}
		if err != nil {
			a.Err = fmt.Sprintf("the API answered id %q, not a UUID", w.ID)
		}
		out = append(out, a)
	}
	return out
}

// VerifyAPIWrites checks, like the drill's own rows, that every write the clients
// made through the API and saw acknowledged is present exactly once at every site
// that should hold it. It waits up to limit for replication to bring them (a
// healed link catching up), reading only the rows with those ids.
func VerifyAPIWrites(ctx context.Context, topo *sites.Topology, writes []traffic.Write, limit time.Duration) drill.Verdict {
	sess := postgres.NewSession(topo)
	defer sess.Close()
	attempts := APIAttempts(writes)
	place := APIPlacement(topo)
	ids := make([]uuid.UUID, 0, len(attempts))
	for _, a := range attempts {
		ids = append(ids, a.Row.ID)
	}
	deadline := time.Now().Add(limit)
	for {
		holdings, err := readAPIRows(ctx, topo, sess, ids)
		if err != nil {
			if time.Now().Before(deadline) && ctx.Err() == nil {
				time.Sleep(2 * time.Second)
				continue
			}
			v := drill.Verdict{Acked: len(attempts)}
			v.Checks = []drill.Check{{Name: "read " + APITable, Detail: err.Error()}}
			return v
		}
		v := drill.Verify(drill.VerifyInput{Attempts: attempts, Holdings: holdings, Place: place})
		if v.Lost == 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			// No replication flows are asked about here: the drill's verdict has them.
			v.Checks = slices.DeleteFunc(v.Checks, func(c drill.Check) bool { return c.Name == "subscriptions" })
			return v
		}
		time.Sleep(time.Second)
	}
}

// readAPIRows reads, at every site running PostgreSQL, the API rows with these ids.
func readAPIRows(ctx context.Context, topo *sites.Topology, sess *postgres.Session, ids []uuid.UUID) (map[string][]drill.Row, error) {
	out := map[string][]drill.Row{}
	for _, s := range topo.Sites {
		if !s.HasStack("postgres") {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		rows, err := readAPIRowsAt(cctx, sess, s.Name, ids)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: %w", APITable, s.Name, err)
		}
		out[s.Name] = rows
	}
	return out, nil
}

func readAPIRowsAt(ctx context.Context, sess *postgres.Session, site string, ids []uuid.UUID) ([]drill.Row, error) {
	pool, err := sess.Pool(ctx, site)
	if err != nil {
		return nil, err
	}
	rs, err := pool.Query(ctx, `SELECT site, id FROM `+APITable+` WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []drill.Row
	for rs.Next() {
		var r drill.Row
		if err := rs.Scan(&r.Site, &r.ID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}
