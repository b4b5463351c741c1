package monitoring_test

import (
	"context"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitectl/sitectl/replication/postgres/pgtest"
	"github.com/sitectl/sitectl/stacks"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestLabExporterQueries runs the postgres-exporter queries sitectl ships on a real
// PostgreSQL 15 with a logical slot holding WAL and max_slot_wal_keep_size set: every
// query runs, returns the columns its metrics name, and the slot's retained and lag
// bytes grow with WAL the subscriber has not confirmed.
func TestLabExporterQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("real PostgreSQL: skipped under -short")
	}
	c := pgtest.Start(t, pgtest.Options{Name: "st-exporter", User: "sitectl", Password: "x", Database: "app",
		Settings: map[string]string{"wal_level": "logical", "max_slot_wal_keep_size": "64MB", "max_replication_slots": "4", "max_wal_senders": "4"}})
	conn := c.MustConnect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range []string{
		"CREATE TABLE orders (site text, id uuid, note text, PRIMARY KEY (site, id))",
		"SELECT pg_create_logical_replication_slot('sub_douala_from_cloud', 'pgoutput')",
		"INSERT INTO orders SELECT 'cloud', gen_random_uuid(), repeat('x', 200) FROM generate_series(1, 5000)",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	topo := stacktest.Load(t, "dev")
	r, err := monitoring.Stack{}.Render(stacks.Input{Topo: topo, Site: topo.Site("douala")})
	if err != nil {
		t.Fatal(err)
	}
	var queries map[string]struct {
		Query   string
		Metrics []map[string]struct{ Usage string }
	}
	if err := yaml.Unmarshal(r.Files["queries.yaml"], &queries); err != nil {
		t.Fatal(err)
	}
	if len(queries) != 2 {
		t.Fatalf("%d queries, want sitectl_slots and sitectl_subscriptions", len(queries))
	}
	for name, q := range queries {
		rows, err := conn.Query(ctx, q.Query)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cols := map[string]int{}
		for i, f := range rows.FieldDescriptions() {
			cols[f.Name] = i
		}
		for _, m := range q.Metrics {
			for col := range m {
				if _, ok := cols[col]; !ok {
					t.Errorf("%s: metric column %s is not returned (columns %v)", name, col, cols)
				}
			}
		}
		n := 0
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			n++
			if name == "sitectl_slots" {
				retained, lag := toFloat(vals[cols["retained_bytes"]]), toFloat(vals[cols["lag_bytes"]])
				if vals[cols["slot_name"]] != "sub_douala_from_cloud" || retained < 1e6 || lag < 1e6 {
					t.Errorf("slot row %v: want sub_douala_from_cloud retaining and lagging over 1 MB of WAL", vals)
				}
				// safe_wal_size counts from the current segment: up to the limit plus a segment or two.
				if safe := toFloat(vals[cols["safe_wal_size_bytes"]]); safe <= 0 || safe > 64<<20+32<<20 {
					t.Errorf("safe_wal_size_bytes %v, want about max_slot_wal_keep_size (64MB)", safe)
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "sitectl_slots" && n != 1 {
			t.Errorf("sitectl_slots returned %d rows, want 1", n)
		}
	}
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	}
	return -1
}
