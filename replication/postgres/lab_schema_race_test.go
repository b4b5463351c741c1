package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitectl/sitectl/lab/labgate"
	"github.com/sitectl/sitectl/replication/postgres/pgtest"
)

// TestLabSchemaConcurrentRuns: schema runs on one database at once — dry runs
// (another site's plan) and applies (the site's own deploy), as parallel site
// deploys make them — all succeed. Without one run at a time, a CREATE TABLE IF
// NOT EXISTS racing another's commit failed with a duplicate key in pg_type (seen
// in a full lab run: "duplicate key value violates unique constraint
// pg_type_typname_nsp_index").
func TestLabSchemaConcurrentRuns(t *testing.T) {
	labgate.Skip(t)
	if why := pgtest.Available(); why != "" {
		t.Skip(why)
	}
	c, err := pgtest.StartCluster(pgtest.Options{Name: "pgschemarace", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=%s pool_max_conns=16", c.Dir, c.Port, c.Opts.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var sql string
	for i := range 8 {
		sql += fmt.Sprintf("CREATE TABLE IF NOT EXISTS public.race_%d (id uuid PRIMARY KEY, site text NOT NULL, body text);\n", i)
	}
	s := &Schema{Path: "schema.sql", SQL: sql, SHA256: "race"}
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					errs[i] = s.Apply(ctx, pool, nil)
				} else {
					errs[i] = s.DryRun(ctx, pool, nil)
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: concurrent schema runs: %v", round, err)
		}
		for i := range 8 {
			if _, err := pool.Exec(ctx, fmt.Sprintf("DROP TABLE public.race_%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
