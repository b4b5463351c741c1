package postgres

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/plan"
)

var cutFor = flag.Duration("pg.cut", 30*time.Second, "how long TestLabReplication cuts douala's links")

// stepNames lists a plan's steps as "site: + postgres publication x".
func stepNames(p *Planned) []string {
	var out []string
	for _, site := range slices.Sorted(maps.Keys(p.Changes)) {
		for _, c := range p.Changes[site] {
			out = append(out, site+": "+c.Step.String())
		}
	}
	sort.Strings(out)
	return out
}

func wantSteps(t *testing.T, p *Planned, want ...string) {
	t.Helper()
	if err := p.Err(); err != nil {
		t.Fatalf("plan: %v", err)
	}
	got := stepNames(p)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLabReplication runs the whole replication story on three real PostgreSQL 15
// clusters: refusals (an unreachable site, an unfit table), create, replicate both
// ways, no loop, idempotent plan, a table added, a 30 s cut with writes on both
// sides, and a duplicate key. One set of clusters serves every step: starting them is
// the slow part on a busy 2-core machine.
func TestLabReplication(t *testing.T) {
	ctx := context.Background()
	l := startLab(t, "douala:postgres.max_slot_wal_keep_size=2MB")
	// Refusals first, on the empty clusters: nothing may be created by them.
	t.Run("an unreachable site stops the whole plan", func(t *testing.T) { testUnreachableSite(t, l) })
	t.Run("a table without site in its replica identity is refused", func(t *testing.T) { testBadTable(t, l) })

	// First plan: everything to create, on every site.
	p := l.plan(ctx)
	wantSteps(t, p,
		"cloud: ~ postgres schema",
		"cloud: + postgres application role app",
		"cloud: + postgres publication sitectl_cloud_to_douala",
		"cloud: + postgres publication sitectl_cloud_to_yaounde",
		"cloud: + postgres subscription sitectl_douala_to_cloud",
		"cloud: + postgres subscription sitectl_yaounde_to_cloud",
		"douala: ~ postgres schema",
		"douala: + postgres application role app",
		"douala: + postgres publication sitectl_douala_to_cloud",
		"douala: + postgres subscription sitectl_cloud_to_douala",
		"yaounde: ~ postgres schema",
		"yaounde: + postgres application role app",
		"yaounde: + postgres publication sitectl_yaounde_to_cloud",
		"yaounde: + postgres subscription sitectl_cloud_to_yaounde",
	)
	var rendered strings.Builder
	pl := plan.Plan{Env: "test"}
	for _, site := range slices.Sorted(maps.Keys(p.Changes)) {
		pl.Sites = append(pl.Sites, plan.SitePlan{Site: site, Steps: p.Steps(site)})
	}
	if err := pl.Render(&rendered); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rendered.String(), testPassword) || strings.Contains(rendered.String(), "s3cret") {
		t.Fatalf("the plan shows the password:\n%s", rendered.String())
	}
	if !strings.Contains(rendered.String(), "passfile=") || strings.Contains(rendered.String(), "password=") {
		t.Errorf("the plan should connect with the passfile, no password:\n%s", rendered.String())
	}
	if !strings.Contains(rendered.String(), "application role app") {
		t.Errorf("the plan should create the application role:\n%s", rendered.String())
	}
	if err := p.Apply(ctx, nil); err != nil {
		t.Fatalf("apply: %v\n%s", err, l.clusterLogs())
	}
	t.Run("second plan has nothing to do", func(t *testing.T) {
		wantSteps(t, l.plan(ctx))
	})
	t.Run("the part plans per site and waits for streaming", func(t *testing.T) {
		part := NewPart(Options{Wait: time.Minute})
		defer part.Close()
		for _, s := range l.topo.Sites {
			steps, err := part.Plan(ctx, l.topo, s)
			if err != nil || len(steps) != 0 {
				t.Fatalf("%s: steps %v, err %v", s.Name, steps, err)
			}
			if err := part.Wait(ctx, l.topo, s); err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
		}
	})

	t.Run("rows, updates and deletes reach every site, and stop", func(t *testing.T) {
		l.waitStreaming(30 * time.Second)
		ids := map[string]string{}
		for _, s := range l.topo.SiteNames() {
			ids[s] = uuid.Must(uuid.NewV7()).String()
			l.exec(s, `INSERT INTO public.orders (id, site, amount) VALUES ($1, $2, 10)`, ids[s], s)
		}
		took := l.waitConverged("public.orders", 3, 20*time.Second)
		t.Logf("a row written at each site reached every other site in %s", took.Round(time.Millisecond))
		l.exec("douala", `UPDATE public.orders SET amount = 99 WHERE id = $1 AND site = 'douala'`, ids["douala"])
		l.exec("yaounde", `DELETE FROM public.orders WHERE id = $1 AND site = 'yaounde'`, ids["yaounde"])
		l.waitConverged("public.orders", 2, 20*time.Second)
		for _, s := range l.topo.SiteNames() {
			if n := l.queryInt(s, `SELECT count(*) FROM public.orders WHERE site = 'douala' AND amount = 99`); n != 1 {
				t.Errorf("%s: the update made at douala did not arrive", s)
			}
		}
		assertNoLoop(t, l)
	})

	t.Run("status streams", func(t *testing.T) {
		l.waitStreaming(20 * time.Second)
		r := l.status()
		if len(r.Flows) != 4 || !r.Healthy() {
			t.Fatalf("want 4 healthy flows:\n%s", l.statusText())
		}
	})

	t.Run("a table added to the list plans exactly that", func(t *testing.T) {
		l.edit("schema.sql", func(s string) string {
			return s + `CREATE TABLE IF NOT EXISTS payments (
    id uuid NOT NULL, site text NOT NULL, order_id uuid, PRIMARY KEY (site, id));
`
		})
		l.addTable("payments")
		l.load()
		p := l.plan(ctx)
		wantSteps(t, p,
			"cloud: ~ postgres schema",
			"cloud: ~ postgres publication sitectl_cloud_to_douala",
			"cloud: ~ postgres publication sitectl_cloud_to_yaounde",
			"cloud: ~ postgres subscription sitectl_douala_to_cloud",
			"cloud: ~ postgres subscription sitectl_yaounde_to_cloud",
			"douala: ~ postgres schema",
			"douala: ~ postgres publication sitectl_douala_to_cloud",
			"douala: ~ postgres subscription sitectl_cloud_to_douala",
			"yaounde: ~ postgres schema",
			"yaounde: ~ postgres publication sitectl_yaounde_to_cloud",
			"yaounde: ~ postgres subscription sitectl_cloud_to_yaounde",
		)
		for _, c := range p.Changes["douala"] {
			if c.Op.Kind == OpAlterPublication && strings.Join(c.Step.Diff, "|") != "+ table public.payments WHERE (site = 'douala')" {
				t.Errorf("douala publication diff = %q", c.Step.Diff)
			}
		}
		if err := p.Apply(ctx, nil); err != nil {
			t.Fatalf("apply: %v", err)
		}
		wantSteps(t, l.plan(ctx))
		l.waitStreaming(30 * time.Second)
		l.exec("yaounde", `INSERT INTO public.payments (id, site) VALUES ($1, 'yaounde')`, uuid.Must(uuid.NewV7()).String())
		l.waitConverged("public.payments", 1, 20*time.Second)
	})

	t.Run("a subscription whose slot is gone is re-created", func(t *testing.T) {
		// The publisher lost the slot (restored from a backup, rebuilt, or the slot
		// passed max_slot_wal_keep_size and was dropped by hand).
		l.exec("cloud", `ALTER SUBSCRIPTION sitectl_yaounde_to_cloud DISABLE`)
		deadline := time.Now().Add(15 * time.Second)
		for l.queryInt("yaounde", `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'sitectl_yaounde_to_cloud' AND active`) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		l.exec("yaounde", `SELECT pg_drop_replication_slot('sitectl_yaounde_to_cloud')`)
		l.insertOrders("yaounde", 50)
		p := l.plan(ctx)
		wantSteps(t, p, "cloud: ~ postgres subscription sitectl_yaounde_to_cloud")
		if d := strings.Join(p.Changes["cloud"][0].Step.Diff, "|"); !strings.Contains(d, "re-create: its slot sitectl_yaounde_to_cloud is gone from yaounde") || !strings.Contains(d, "earlier copies in public.payments") {
			t.Errorf("diff = %s", d)
		}
		if err := p.Apply(ctx, nil); err != nil {
			t.Fatalf("apply: %v\n%s", err, l.clusterLogs())
		}
		l.waitConverged("public.orders", -1, 30*time.Second)
		l.waitStreaming(30 * time.Second)
		wantSteps(t, l.plan(ctx))
	})

	t.Run("a subscription's slot is made outside the subscriber's transaction", func(t *testing.T) {
		// Two sites subscribing to each other at the same moment (deploy --all) must
		// not wait for each other: creating a slot waits for every transaction with
		// an xid on the publisher. Here cloud holds one open (as cloud's own
		// subscription step would) while douala subscribes to cloud; douala must
		// then hold no transaction that a slot made at douala would wait for.
		l.exec("douala", `DROP SUBSCRIPTION sitectl_cloud_to_douala`)
		p := l.plan(ctx)
		wantSteps(t, p, "douala: + postgres subscription sitectl_cloud_to_douala")
		tx := l.openTx("cloud", `SELECT txid_current()`)
		defer func() { _ = tx.Rollback(ctx) }()
		applied := make(chan error, 1)
		go func() { applied <- p.Apply(ctx, nil) }()
		// The slot's creation at cloud waits for that transaction.
		deadline := time.Now().Add(30 * time.Second)
		for l.queryInt("cloud", `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'transactionid'`) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no slot creation at cloud waits for cloud's open transaction")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n := l.queryInt("douala", `SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_backend_pid()`); n != 0 {
			t.Errorf("douala holds %d transaction(s) with an xid while its slot is made at cloud: a slot made at douala now (cloud's own subscription) would wait for it, and it for cloud", n)
		}
		// That slot, made at douala meanwhile, does not wait.
		dpool, err := l.sess.Pool(ctx, "douala")
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = dpool.Exec(sctx, `SELECT pg_create_logical_replication_slot('sitectl_test_crossing', 'pgoutput')`)
		cancel()
		if err != nil {
			t.Errorf("a slot made at douala while douala subscribes to cloud: %v", err)
		} else {
			l.exec("douala", `SELECT pg_drop_replication_slot('sitectl_test_crossing')`)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-applied; err != nil {
			t.Fatalf("apply: %v\n%s", err, l.clusterLogs())
		}
		l.waitStreaming(30 * time.Second)
		wantSteps(t, l.plan(ctx))
	})

	t.Run("a slot near max_slot_wal_keep_size warns", func(t *testing.T) {
		// douala runs with max_slot_wal_keep_size = 2MB (see startLab below).
		l.cutSite("douala")
		var f FlowStatus
		for i := 0; i < 10; i++ {
			l.exec("douala", `INSERT INTO public.orders (id, site, amount) SELECT gen_random_uuid(), 'douala', g FROM generate_series(1, 2500) g`)
			f = l.flow(l.status(), "douala", "cloud")
			if len(f.Warnings) > 0 {
				break
			}
		}
		t.Logf("status:\n%s", l.statusText())
		if len(f.Warnings) == 0 || !strings.Contains(f.Warnings[0], "sitectl_douala_to_cloud") || f.MaxSlotWALKeep != 2<<20 {
			t.Fatalf("want a warning for douala's slot at 2MB, got %+v", f)
		}
		l.heal()
		if _, err := Resume(ctx, l.topo, l.sess); err != nil {
			t.Fatal(err)
		}
		l.waitConverged("public.orders", -1, 60*time.Second)
		l.waitStreaming(30 * time.Second)
	})

	t.Run("cut, writes on both sides, heal, converge", func(t *testing.T) {
		base := l.queryInt("cloud", `SELECT count(*) FROM public.orders`)
		l.cutSite("douala")
		cutAt := time.Now()
		// Both sides keep writing during the cut: 1,000 rows each, spread over it.
		for i := 0; i < 10; i++ {
			l.insertOrders("douala", 100)
			l.insertOrders("cloud", 100)
			time.Sleep(*cutFor / 12)
		}
		r := l.status()
		out := l.flow(r, "douala", "cloud")
		if out.RetainedBytes <= 0 || out.LagBytes <= 0 || out.State == StateStreaming {
			t.Errorf("during the cut douala's slot should hold WAL and the flow not stream:\n%s", l.statusText())
		}
		if n := l.queryInt("douala", `SELECT count(*) FROM public.orders WHERE site = 'cloud'`); n > base {
			t.Errorf("douala got cloud's rows during the cut (%d): the cut leaks", n)
		}
		t.Logf("during the cut (cut at %s, now %s):\n%s", cutAt.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339), l.statusText())
		time.Sleep(time.Until(cutAt.Add(*cutFor)))
		l.heal()
		healed := time.Now()
		planStart := time.Now()
		p := l.plan(ctx)
		planned := time.Since(planStart)
		if err := p.Apply(ctx, nil); err != nil {
			t.Fatalf("apply: %v", err)
		}
		n := p.Count()
		t.Logf("plan %s, apply %s", planned.Round(time.Millisecond), (time.Since(planStart) - planned).Round(time.Millisecond))
		took := l.waitConverged("public.orders", base+2000, 60*time.Second)
		t.Logf("FIGURE convergence after a %s cut with 1,000 rows written on each side: %s after the heal (%d steps re-enabled the subscriptions the cut disabled, %s of it)",
			*cutFor, time.Since(healed).Round(time.Millisecond), n, took.Round(time.Millisecond))
		l.waitStreaming(30 * time.Second)
		for _, f := range l.status().Flows {
			if f.Pending != nil && f.Pending.Conflict != nil {
				t.Errorf("conflict after the heal: %s", f.Pending.Conflict.Summary())
			}
		}
		wantSteps(t, l.plan(ctx))
	})

	t.Run("a duplicate key disables the subscription and is reported", func(t *testing.T) {
		dup := uuid.Must(uuid.NewV7()).String()
		// Someone writes douala's key by hand at the hub, then douala writes it.
		l.exec("cloud", `INSERT INTO public.orders (id, site, amount) VALUES ($1, 'douala', 1)`, dup)
		l.exec("douala", `INSERT INTO public.orders (id, site, amount) VALUES ($1, 'douala', 2)`, dup)
		var f FlowStatus
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			f = l.flow(l.status(), "douala", "cloud")
			if f.State == StateDisabledBy && f.Pending != nil && f.Pending.Conflict != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("status:\n%s", l.statusText())
		if f.State != StateDisabledBy || f.Pending == nil || f.Pending.Conflict == nil {
			t.Fatalf("want douala → cloud disabled by error with the conflict found, got %+v", f)
		}
		c := f.Pending.Conflict
		if c.Table != "public.orders" || c.Key["id"] != dup || c.Key["site"] != "douala" || c.FinishLSN == "" {
			t.Fatalf("conflict = %+v, want public.orders (site, id) = (douala, %s)", c, dup)
		}
		if !strings.Contains(f.Resolution, "SKIP (lsn = '"+c.FinishLSN+"')") || !strings.Contains(f.Resolution, dup) {
			t.Errorf("resolution should give the SKIP LSN and the row: %s", f.Resolution)
		}
		// Not an apply loop: the error count stays put while it is disabled.
		errs := f.ApplyErrors
		time.Sleep(3 * time.Second)
		if again := l.flow(l.status(), "douala", "cloud"); again.ApplyErrors != errs || again.State != StateDisabledBy {
			t.Errorf("apply errors went %d → %d (%s): the worker retries", errs, again.ApplyErrors, again.State)
		}
		// The plan leaves it disabled and says why.
		p := l.plan(ctx)
		var blocked *Change
		for i, ch := range p.Changes["cloud"] {
			if ch.Op.Kind == OpBlocked {
				blocked = &p.Changes["cloud"][i]
			}
		}
		if blocked == nil || blocked.Step.Apply != nil || !strings.Contains(blocked.Step.Note, dup) {
			t.Fatalf("plan should show the blocked subscription with the conflict: %v", stepNames(p))
		}
		// deploy's wait for cloud fails at once, naming the conflict.
		part := NewPart(Options{Wait: time.Minute})
		defer part.Close()
		waitStart := time.Now()
		if err := part.Wait(ctx, l.topo, l.topo.Site("cloud")); err == nil || !strings.Contains(err.Error(), dup) || time.Since(waitStart) > 30*time.Second {
			t.Errorf("part.Wait(cloud) = %v after %s; want the conflict, at once", err, time.Since(waitStart))
		}
		// resume (what a drill runs after a heal) holds it back too.
		res, err := Resume(ctx, l.topo, l.sess)
		if err != nil || len(res.Enabled) != 0 || len(res.Held) != 1 || res.Held[0].Key["id"] != dup {
			t.Fatalf("resume = %+v, %v; want the conflict held", res, err)
		}
		// Resolve: the stray copy at the hub goes; the plan then re-enables.
		l.exec("cloud", `DELETE FROM public.orders WHERE id = $1 AND site = 'douala'`, dup)
		if n := l.reconcile(ctx); n != 1 {
			t.Errorf("resolving should take one step (enable), took %d", n)
		}
		l.waitConverged("public.orders", -1, 30*time.Second)
		if n := l.queryInt("yaounde", `SELECT count(*) FROM public.orders WHERE id = $1 AND amount = 2`, dup); n != 1 {
			t.Errorf("douala's row did not reach yaounde after the resolution")
		}
		l.waitStreaming(20 * time.Second)
	})

	t.Run("a schema change blocked by an open transaction fails after SchemaLockWait", func(t *testing.T) {
		// CREATE INDEX waits for every open transaction that wrote the table; one
		// left idle in a transaction must not hold plan (its dry run) for ever.
		l.edit("schema.sql", func(s string) string {
			return s + "CREATE INDEX IF NOT EXISTS orders_amount ON orders (amount);\n"
		})
		l.load()
		defer func(old time.Duration) { SchemaLockWait = old }(SchemaLockWait)
		SchemaLockWait = time.Second
		tx := l.openTx("douala", `LOCK TABLE public.orders IN ROW EXCLUSIVE MODE`)
		defer func() { _ = tx.Rollback(ctx) }()
		start := time.Now()
		pp, err := Plan(ctx, l.topo, l.sess, Options{Wait: 30 * time.Second})
		if err == nil {
			err = pp.Err()
		}
		if err == nil || !strings.Contains(err.Error(), "douala") || !strings.Contains(err.Error(), "waited 1s for a lock another session holds") {
			t.Fatalf("plan while a transaction holds orders at douala: %v", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("plan took %s to give up", d)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		p := l.plan(ctx)
		wantSteps(t, p, "cloud: ~ postgres schema", "douala: ~ postgres schema", "yaounde: ~ postgres schema")
		if err := p.Apply(ctx, nil); err != nil {
			t.Fatalf("apply: %v", err)
		}
		if n := l.queryInt("douala", `SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_amount'`); n != 1 {
			t.Errorf("index orders_amount at douala: %d", n)
		}
		wantSteps(t, l.plan(ctx))
	})

	t.Run("the password is in no server log", func(t *testing.T) {
		for name, c := range l.clusters {
			b, err := os.ReadFile(filepath.Join(c.Dir, "server.log"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte("CREATE PUBLICATION")) {
				t.Errorf("%s: log_statement=ddl should have logged the DDL", name)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "s3cret") {
					t.Errorf("%s's server log holds the password: %.80s…", name, line)
				}
			}
		}
	})
}

// assertNoLoop checks that, once converged, no site keeps writing: a row that looped
// between sites would be applied again and again, and each apply writes WAL. (Table
// counters are no use here: apply workers flush their statistics late.)
func assertNoLoop(t *testing.T, l *lab) {
	t.Helper()
	snap := func() map[string]uint64 {
		out := map[string]uint64{}
		for _, s := range l.topo.SiteNames() {
			pool, err := l.sess.Pool(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			var lsn string
			if err := pool.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
				t.Fatal(err)
			}
			out[s], _ = parseLSN(lsn)
		}
		return out
	}
	time.Sleep(time.Second)
	before := snap()
	time.Sleep(4 * time.Second)
	after := snap()
	for s := range before {
		// A few keepalive-driven records may appear; a loop writes continuously.
		if moved := after[s] - before[s]; moved > 16<<10 {
			t.Errorf("%s wrote %d bytes of WAL in 4 s with no writes: a replication loop", s, moved)
		}
		t.Logf("%s: WAL %s → %s", s, formatLSN(before[s]), formatLSN(after[s]))
	}
	for _, s := range l.topo.SiteNames() {
		l.fingerprint(s, "public.orders") // count(*) = count(DISTINCT id)
	}
}

// testUnreachableSite: a site whose database cannot be reached stops the whole
// replication plan; the plan names it and why, and nothing is created elsewhere.
func testUnreachableSite(t *testing.T, l *lab) {
	ctx := context.Background()
	l.extraSet = []string{"cloud:postgres.port=1"}
	l.load()
	defer func() { l.extraSet = nil; l.load() }()
	p := l.plan(ctx)
	if len(p.Changes) != 0 {
		t.Fatalf("no site should get changes: %v", stepNames(p))
	}
	if e := p.Errors["cloud"]; e == nil || !strings.Contains(e.Error(), "cannot reach cloud's PostgreSQL at 127.0.0.1:1") {
		t.Errorf("cloud's error = %v", e)
	}
	for _, s := range []string{"douala", "yaounde"} {
		if e := p.Errors[s]; e == nil || !strings.Contains(e.Error(), "cannot plan cloud (cannot reach cloud's PostgreSQL") {
			t.Errorf("%s's error = %v, want it to name cloud and why", s, e)
		}
	}
	// A deploy of douala and yaounde waits for their databases (PeerWait), never for
	// cloud's, which this deploy does not start: it says so at once, with the fix.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	p2, err := Plan(wctx, l.topo, l.sess, Options{PeerWait: 10 * time.Minute, Starting: []string{"douala", "yaounde"}})
	if err != nil {
		t.Fatalf("plan of a deploy without cloud waited for cloud: %v", err)
	}
	if e := p2.Errors["douala"]; e == nil || !strings.Contains(e.Error(), "not part of this deploy: cloud; deploy it too (--site cloud, or --all)") {
		t.Errorf("douala's error = %v, want the fix named", e)
	}
	if err := p.Apply(ctx, nil); err == nil {
		t.Error("apply of a failed plan should refuse")
	}
	for _, s := range []string{"douala", "yaounde"} {
		if n := l.queryInt(s, `SELECT count(*) FROM pg_publication`) + l.queryInt(s, `SELECT count(*) FROM pg_subscription`) +
			l.queryInt(s, `SELECT count(*) FROM pg_class WHERE relname IN ('orders', 'customers')`); n != 0 {
			t.Errorf("%s: %d objects were created", s, n)
		}
	}
	if s := fmt.Sprint(p.Err()); strings.Contains(s, "s3cret") {
		t.Errorf("the error shows the password: %s", s)
	}
}

// testBadTable: a table whose replica identity does not cover the owner column
// is refused at plan time, by name, and the schema dry run leaves nothing behind.
func testBadTable(t *testing.T, l *lab) {
	ctx := context.Background()
	schema, defaults := l.read("schema.sql"), l.read("defaults.yaml")
	defer func() {
		l.write("schema.sql", schema)
		l.write("defaults.yaml", defaults)
		l.load()
	}()
	l.edit("schema.sql", func(s string) string {
		return s + "CREATE TABLE IF NOT EXISTS ledger (id uuid PRIMARY KEY, site text NOT NULL, amount int);\n"
	})
	l.addTable("ledger")
	l.load()
	p := l.plan(ctx)
	if len(p.Changes) != 0 {
		t.Fatalf("no changes expected: %v", stepNames(p))
	}
	for _, s := range l.topo.SiteNames() {
		e := p.Errors[s]
		if e == nil || !strings.Contains(e.Error(), "table public.ledger cannot be replicated") || !strings.Contains(e.Error(), "does not include the owner column site") {
			t.Errorf("%s: error = %v", s, e)
		}
		if n := l.queryInt(s, `SELECT count(*) FROM pg_class WHERE relname IN ('orders', 'customers', 'ledger')`); n != 0 {
			t.Errorf("%s: the dry run left %d tables", s, n)
		}
	}
}

// A publisher whose link goes silent in the middle of CREATE SUBSCRIPTION (the
// subscriber's server connected to it, then gets no answers, nothing is closed) fails
// the step within PublisherTimeout naming the publisher, and leaves neither the
// subscription nor the slot sitectl made for it; once the link answers again a
// re-run converges.
func TestLabSilentPublisher(t *testing.T) {
	ctx := context.Background()
	l := startLab(t)
	old := PublisherTimeout
	PublisherTimeout = 2 * time.Second
	t.Cleanup(func() { PublisherTimeout = old })
	const sub = "sitectl_douala_to_cloud"
	l.proxies["douala"].StallApps(sub)
	began := time.Now()
	err := l.plan(ctx).Apply(ctx, nil)
	took := time.Since(began)
	if err == nil || !strings.Contains(err.Error(), "create subscription "+sub) || !strings.Contains(err.Error(), "no answer from douala's PostgreSQL within 2s") {
		t.Fatalf("apply with douala's link silent: err = %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the error shows the password: %v", err)
	}
	t.Logf("apply failed after %s: %v", took.Round(time.Millisecond), err)
	if n := l.queryInt("cloud", `SELECT count(*) FROM pg_subscription WHERE subname = $1`, sub); n != 0 {
		t.Errorf("cloud kept subscription %s", sub)
	}
	if n := l.queryInt("douala", `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, sub); n != 0 {
		t.Errorf("douala kept slot %s for a subscription that does not exist", sub)
	}
	l.proxies["douala"].Heal()
	if err := l.plan(ctx).Apply(ctx, nil); err != nil {
		t.Fatalf("re-run once douala answers: %v", err)
	}
	wantSteps(t, l.plan(ctx))
	l.waitStreaming(30 * time.Second)
	if logs := l.clusterLogs(); strings.Contains(logs, "s3cret") {
		t.Fatalf("a server log shows the password")
	}
}

// A subscription whose slot was left behind on the publisher (dropped with slot_name
// = NONE) is re-created by the subscriber's deploy alone: it replaces the old slot
// under the slot's lock. The publisher's own deploy, planned while the slot was
// stale and running late — in the moment between the new slot and the committed
// subscription — finds that lock held and leaves the new slot alone.
func TestLabSlotLock(t *testing.T) {
	ctx := context.Background()
	l := startLab(t)
	if err := l.plan(ctx).Apply(ctx, nil); err != nil {
		t.Fatalf("first apply: %v", err)
	}
	l.waitStreaming(30 * time.Second)
	const sub = "sitectl_douala_to_cloud"
	for _, stmt := range []string{"DISABLE", "SET (slot_name = NONE)"} {
		l.exec("cloud", "ALTER SUBSCRIPTION "+sub+" "+stmt)
	}
	l.exec("cloud", "DROP SUBSCRIPTION "+sub)
	deadline := time.Now().Add(15 * time.Second)
	for l.queryInt("douala", `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1 AND active`, sub) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}

	p := l.plan(ctx)
	var drop func(context.Context) error
	for _, c := range p.Changes["douala"] {
		if c.Op.Kind == OpDropSlot && c.Op.Object == sub {
			drop = c.Step.Apply
		}
	}
	if drop == nil {
		t.Fatalf("the plan has no drop of the stale slot at douala: %v", stepNames(p))
	}
	delete(p.Changes, "douala") // cloud's deploy alone, as `deploy --site cloud`
	dropped := make(chan error, 1)
	testHookSlotMade = func(slot string) {
		if slot == sub {
			dropped <- drop(ctx)
		}
	}
	t.Cleanup(func() { testHookSlotMade = nil })
	if err := p.Apply(ctx, nil); err != nil {
		t.Fatalf("cloud's apply with the old slot still at douala: %v", err)
	}
	select {
	case err := <-dropped:
		if err != nil {
			t.Fatalf("douala's late drop-slot step: %v", err)
		}
	default:
		t.Fatal("the test hook did not run: no new slot was made")
	}
	if n := l.queryInt("douala", `SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`, sub); n != 1 {
		t.Fatalf("douala has %d slot(s) %s after both steps, want the new one", n, sub)
	}
	l.waitStreaming(30 * time.Second)
	l.exec("douala", `INSERT INTO public.orders (id, site, amount) VALUES ($1, 'douala', 1)`, uuid.Must(uuid.NewV7()).String())
	l.waitConverged("public.orders", -1, 20*time.Second)
	wantSteps(t, l.plan(ctx))
}
