package postgres

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/golden"
	"github.com/sitectl/sitectl/plan"
	"github.com/sitectl/sitectl/sites"
)

// exampleTopo loads the repo's example sites (dev, no overlay) with fixed tables.
func exampleTopo(t *testing.T) *sites.Topology {
	t.Helper()
	t.Setenv("SITECTL_PG_PASSWORD", testPassword)
	topo, err := sites.Load(sites.Options{Dir: filepath.Join("..", "..", "sites"), Environ: []string{},
		Set: []string{"yaounde:postgres.replication_host=10.20.0.100"}})
	if err != nil {
		t.Fatalf("load example sites: %v", err)
	}
	// Pin the table list: the golden files are about the logic, not the example list.
	for _, s := range topo.Sites {
		s.Postgres.Tables = []string{"orders", "customers"}
	}
	return topo
}

func TestDesireAndServerSettings(t *testing.T) {
	topo := exampleTopo(t)
	d, err := Build(topo)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(d, "", "  ")
	if bytes.Contains(b, []byte("s3cret")) {
		t.Fatal("the desired state holds the password")
	}
	golden.AssertString(t, "desired.json.golden", string(b)+"\n")

	var out strings.Builder
	for _, s := range topo.Sites {
		fmt.Fprintf(&out, "%s: %s\n", s.Name, strings.Join(ServerArgs(topo, s), " "))
	}
	golden.AssertString(t, "server-settings.golden", out.String())
	// Slot names are unique on every publisher.
	for site, pubs := range d.Publications {
		seen := map[string]bool{}
		for _, p := range pubs {
			if seen[p.Name] {
				t.Errorf("%s: slot/publication %s twice", site, p.Name)
			}
			seen[p.Name] = true
		}
	}
}

// liveFromDesired builds the live state a fully reconciled site would have.
func liveFromDesired(t *testing.T, d *Desired) map[string]*Live {
	t.Helper()
	lives := map[string]*Live{}
	for _, site := range d.SiteNames() {
		l := &Live{Site: site, Publications: map[string]*LivePublication{}, Subscriptions: map[string]*LiveSubscription{},
			Slots: map[string]*LiveSlot{}, Tables: map[string]*TableInfo{}}
		for _, p := range d.Publications[site] {
			lp := &LivePublication{Name: p.Name, Publish: Publish, Tables: map[string]string{}}
			for _, tb := range p.Tables {
				lp.Tables[tb.Name] = "(" + tb.Filter + "::text)" // as pg_get_expr prints it
			}
			l.Publications[p.Name] = lp
			l.Slots[p.Name] = &LiveSlot{Name: p.Name, Active: true, ActivePID: 4242}
		}
		for _, s := range d.Subscriptions[site] {
			ci, err := s.Conn.Render()
			if err != nil {
				t.Fatal(err)
			}
			ls := &LiveSubscription{Name: s.Name, Enabled: true, ConnInfo: ci, Slot: s.Name, Publications: []string{s.Publication},
				DisableOnError: true, Tables: map[string]string{}}
			for _, tb := range s.Tables {
				ls.Tables[tb] = "r"
			}
			l.Subscriptions[s.Name] = ls
		}
		lives[site] = l
	}
	return lives
}

func renderChanges(t *testing.T, changes map[string][]Change) string {
	t.Helper()
	p := plan.Plan{Env: "dev"}
	for _, site := range slices.Sorted(maps.Keys(changes)) {
		var steps []plan.Step
		for _, c := range changes[site] {
			steps = append(steps, c.Step)
		}
		p.Sites = append(p.Sites, plan.SitePlan{Site: site, Steps: steps})
	}
	var b strings.Builder
	if err := p.Render(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "s3cret") {
		t.Fatalf("the plan shows the password:\n%s", b.String())
	}
	return b.String()
}

func TestDiff(t *testing.T) {
	topo := exampleTopo(t)
	d, err := Build(topo)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("in sync", func(t *testing.T) {
		if got := Diff(d, liveFromDesired(t, d), Extras{}); len(got) != 0 {
			t.Fatalf("a reconciled topology should plan nothing:\n%s", renderChanges(t, got))
		}
	})

	t.Run("empty sites", func(t *testing.T) {
		lives := map[string]*Live{}
		for _, s := range d.SiteNames() {
			lives[s] = &Live{Site: s, Publications: map[string]*LivePublication{}, Subscriptions: map[string]*LiveSubscription{}, Slots: map[string]*LiveSlot{}}
		}
		ex := Extras{Schema: map[string]string{}}
		for _, s := range d.SiteNames() {
			ex.Schema[s] = "apply schema.sql (sha256 0123456789ab): creates public.customers, public.orders"
		}
		got := Diff(d, lives, ex)
		golden.AssertString(t, "plan-empty.golden", renderChanges(t, got))
		// Apply order inside each site: schema, publications, subscriptions.
		for site, cs := range got {
			for i := 1; i < len(cs); i++ {
				if cs[i].Op.Phase < cs[i-1].Op.Phase {
					t.Errorf("%s: %s before %s", site, cs[i-1].Step, cs[i].Step)
				}
			}
		}
	})

	t.Run("drift", func(t *testing.T) {
		lives := liveFromDesired(t, d)
		dl := lives["douala"]
		// A filter changed by hand, a table too many, a leftover publication.
		dl.Publications["sitectl_douala_to_cloud"].Tables["public.orders"] = "(site <> 'douala'::text)"
		dl.Publications["sitectl_douala_to_cloud"].Tables["public.audit"] = ""
		dl.Publications["sitectl_old"] = &LivePublication{Name: "sitectl_old", Publish: "insert, update, delete, truncate", Tables: map[string]string{}}
		// The subscription points at an old address, lost disable_on_error, a cut disabled it.
		sub := dl.Subscriptions["sitectl_cloud_to_douala"]
		sub.ConnInfo = strings.Replace(sub.ConnInfo, "host=10.30.0.11", "host=10.30.0.99", 1)
		sub.DisableOnError, sub.Enabled = false, false
		delete(sub.Tables, "public.customers")
		// A slot nobody subscribes to any more.
		dl.Slots["sitectl_douala_to_gone"] = &LiveSlot{Name: "sitectl_douala_to_gone"}
		// At the hub: a subscription stopped by a conflict, and one removed from config.
		cl := lives["cloud"]
		cl.Subscriptions["sitectl_yaounde_to_cloud"].Enabled = false
		cl.Subscriptions["sitectl_gone_to_cloud"] = &LiveSubscription{Name: "sitectl_gone_to_cloud", Enabled: true, Publications: []string{"sitectl_gone_to_cloud"}}
		// Yaoundé lost its subscription; the hub still holds its slot; earlier copies wait.
		delete(lives["yaounde"].Subscriptions, "sitectl_cloud_to_yaounde")
		lives["cloud"].Slots["sitectl_cloud_to_yaounde"] = &LiveSlot{Name: "sitectl_cloud_to_yaounde"}
		ex := Extras{
			Conflicts: map[string]*Conflict{"sitectl_yaounde_to_cloud": {Subscription: "sitectl_yaounde_to_cloud", Site: "cloud", From: "yaounde",
				FinishLSN: "0/1A2B3C4", XID: 731, Table: "public.orders", Key: map[string]string{"site": "yaounde", "id": "01890a5d-ac96-774b-bcce-b302099a8057"}, Changes: 3}},
			Copies: map[string]map[string]int64{"sitectl_cloud_to_yaounde": {"public.orders": 12, "public.customers": 0}},
		}
		got := Diff(d, lives, ex)
		golden.AssertString(t, "plan-drift.golden", renderChanges(t, got))
		for _, c := range got["cloud"] {
			if c.Op.Kind == OpBlocked && c.Step.Apply != nil {
				t.Error("a subscription blocked by a conflict must not be applied")
			}
		}
	})
}

func TestTableCheck(t *testing.T) {
	cols := map[string]string{"id": "uuid", "site": "text", "amount": "integer"}
	tests := []struct {
		name string
		info TableInfo
		want string // substring of the error; "" for fit
	}{
		{"pk site,id", TableInfo{Columns: cols, Identity: "default", IdentityColumns: []string{"id", "site"}}, ""},
		{"index id,site", TableInfo{Columns: cols, Identity: "index", IdentityIndex: "orders_id_site", IdentityColumns: []string{"id", "site"}}, ""},
		{"full", TableInfo{Columns: cols, Identity: "full", IdentityColumns: []string{"amount", "id", "site"}}, ""},
		{"pk id only", TableInfo{Columns: cols, Identity: "default", IdentityColumns: []string{"id"}}, "does not include the owner column site"},
		{"index without site", TableInfo{Columns: cols, Identity: "index", IdentityIndex: "ix", IdentityColumns: []string{"id"}}, "replica identity index ix"},
		{"no pk", TableInfo{Columns: cols, Identity: "default"}, "has no replica identity"},
		{"nothing", TableInfo{Columns: cols, Identity: "nothing"}, "has no replica identity"},
		{"bigint key", TableInfo{Columns: map[string]string{"id": "bigint", "site": "text"}, Identity: "default", IdentityColumns: []string{"id", "site"}}, "column id is bigint; it must be uuid"},
		{"no site", TableInfo{Columns: map[string]string{"id": "uuid"}, Identity: "default", IdentityColumns: []string{"id"}}, "has no site column"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.info.Name = "public.t"
			err := tt.info.Check()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "public.t")):
				t.Fatalf("error = %v, want it to name public.t and say %q", err, tt.want)
			}
		})
	}
}

func TestConnInfo(t *testing.T) {
	t.Setenv("PG_TEST_PW", `a b'c\d`)
	c := ConnInfo{Host: "10.30.0.11", Port: 5432, Database: "app", User: "sitectl", SSLMode: "require", Password: sites.SecretRef{Env: "PG_TEST_PW"}}
	got, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	want := `host=10.30.0.11 port=5432 dbname=app user=sitectl password='a b\'c\\d' sslmode=require connect_timeout=10`
	if got != want {
		t.Errorf("Render = %s\nwant     %s", got, want)
	}
	if s := c.String(); strings.Contains(s, "b'c") || !strings.Contains(s, "password=<env:PG_TEST_PW>") {
		t.Errorf("String = %s", s)
	}
	if r := Redact(got); strings.Contains(r, "b") && strings.Contains(r, `c\\d`) || !strings.Contains(r, "password=*** sslmode=require") {
		t.Errorf("Redact = %s", r)
	}
	if r := Redact("host=x password=plain user=u"); r != "host=x password=*** user=u" {
		t.Errorf("Redact = %s", r)
	}
	if r := Redact("postgresql://rep:s3cr@t!@10.10.0.12:5432/app?sslmode=require"); r != "postgresql://rep:***@10.10.0.12:5432/app?sslmode=require" {
		t.Errorf("Redact(URI) = %s", r)
	}
	t.Setenv("PG_TEST_PW", "")
	_ = os.Unsetenv("PG_TEST_PW")
	if _, err := c.Render(); err == nil || !strings.Contains(err.Error(), "PG_TEST_PW is not set") {
		t.Errorf("missing secret: %v", err)
	}
}

func TestNormFilter(t *testing.T) {
	for in, want := range map[string]string{
		"(site = 'douala'::text)":     "site = 'douala'",
		"site = 'douala'":             "site = 'douala'",
		"((site <> 'yaounde'::text))": "site <> 'yaounde'",
		"(a = 1) AND (b = 2)":         "(a = 1) AND (b = 2)",
	} {
		if got := normFilter(in); got != want {
			t.Errorf("normFilter(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"2GB": 2 << 30, "512MB": 512 << 20, "1024kB": 1 << 20, "-1": -1, "2048": 2048 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseSize("2 potatoes"); err == nil {
		t.Error("ParseSize accepted nonsense")
	}
}

// pgoutput message builders (protocol version 1).
func msgBegin(lsn uint64, xid uint32) []byte {
	b := []byte{'B'}
	b = binary.BigEndian.AppendUint64(b, lsn)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Hour/time.Microsecond))
	return binary.BigEndian.AppendUint32(b, xid)
}

func msgRelation(id uint32, schema, table string, cols []string, key []bool) []byte {
	b := []byte{'R'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(append(b, schema...), 0)
	b = append(append(b, table...), 0)
	b = append(b, 'd')
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for i, c := range cols {
		flag := byte(0)
		if key[i] {
			flag = 1
		}
		b = append(b, flag)
		b = append(append(b, c...), 0)
		b = binary.BigEndian.AppendUint32(b, 25)
		b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	}
	return b
}

func tuple(vals ...*string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(vals)))
	for _, v := range vals {
		if v == nil {
			b = append(b, 'n')
			continue
		}
		b = append(b, 't')
		b = binary.BigEndian.AppendUint32(b, uint32(len(*v)))
		b = append(b, *v...)
	}
	return b
}

func sp(s string) *string { return &s }

func TestDecodePgoutput(t *testing.T) {
	rel := msgRelation(16384, "public", "orders", []string{"id", "site", "amount"}, []bool{true, true, false})
	ins := append([]byte{'I', 0, 0, 0x40, 0, 'N'}, tuple(sp("0189-a"), sp("douala"), sp("10"))...)
	upd := append(append([]byte{'U', 0, 0, 0x40, 0, 'K'}, tuple(sp("0189-a"), sp("douala"), nil)...), append([]byte{'N'}, tuple(sp("0189-b"), sp("douala"), sp("11"))...)...)
	del := append([]byte{'D', 0, 0, 0x40, 0, 'K'}, tuple(sp("0189-b"), sp("douala"), nil)...)
	msgs := [][]byte{msgBegin(0x2000, 8), rel, upd, del, {'C'}, msgBegin(0x1000, 7), ins, {'C'}}
	txns, err := decodePgoutput(msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(txns) != 2 || txns[0].xid != 7 || txns[1].xid != 8 || formatLSN(txns[0].finalLSN) != "0/1000" {
		t.Fatalf("transactions = %+v", txns)
	}
	if !txns[0].commitTime.Equal(pgEpoch.Add(time.Hour)) {
		t.Errorf("commit time = %s", txns[0].commitTime)
	}
	if k := txns[0].changes[0].key(); k["id"] != "0189-a" || k["site"] != "douala" || len(k) != 2 {
		t.Errorf("insert key = %v", k)
	}
	u := txns[1].changes[0]
	if u.kind != 'U' || u.oldKey["id"] != "0189-a" || u.key()["id"] != "0189-b" {
		t.Errorf("update = %+v", u)
	}
	if d := txns[1].changes[1]; d.kind != 'D' || len(d.key()) != 0 || d.oldKey["id"] != "0189-b" {
		t.Errorf("delete = %+v", d)
	}
	if _, err := decodePgoutput([][]byte{ins}); err == nil {
		t.Error("a change before its relation should be an error")
	}
	if _, err := decodePgoutput([][]byte{msgBegin(1, 1), rel[:10]}); err == nil {
		t.Error("a truncated message should be an error")
	}
	if v, _ := parseLSN("16/B374D848"); formatLSN(v) != "16/B374D848" {
		t.Errorf("LSN round trip: %s", formatLSN(v))
	}
}

// FuzzDecodePgoutput: whatever a slot returns, decoding never panics.
func FuzzDecodePgoutput(f *testing.F) {
	rel := msgRelation(1, "public", "orders", []string{"id", "site"}, []bool{true, true})
	f.Add(msgBegin(1, 1), rel, append([]byte{'I', 0, 0, 0, 1, 'N'}, tuple(sp("x"), sp("y"))...))
	f.Add([]byte{'B'}, []byte{'R', 0}, []byte{'U', 0, 0, 0, 1, 'Z'})
	f.Fuzz(func(_ *testing.T, a, b, c []byte) {
		_, _ = decodePgoutput([][]byte{a, b, c})
	})
}

func TestStatusRender(t *testing.T) {
	r := &Report{Env: "lab", Flows: []FlowStatus{
		{Flow: "douala → cloud", From: "douala", To: "cloud", Subscription: "sitectl_douala_to_cloud", State: StateStreaming, RetainedBytes: 2048, WALStatus: "reserved", MaxSlotWALKeep: 2 << 30},
		{Flow: "cloud → douala", From: "cloud", To: "douala", Subscription: "sitectl_cloud_to_douala", State: StateDisabledBy, LagBytes: 3 << 20, LagSeconds: 42.5,
			RetainedBytes: 1800 << 20, WALStatus: "extended", MaxSlotWALKeep: 2 << 30, ApplyErrors: 2,
			Pending: &Pending{Transactions: 3, Changes: 40, FirstLSN: "0/1A2B3C4", OldestCommit: time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC), Conflict: &Conflict{Subscription: "sitectl_cloud_to_douala", Site: "douala", From: "cloud",
				FinishLSN: "0/1A2B3C4", XID: 731, Table: "public.orders", Key: map[string]string{"site": "yaounde", "id": "01890a5d-ac96-774b-bcce-b302099a8057"}, Changes: 3}},
			Warnings: []string{"slot sitectl_cloud_to_douala on cloud retains 1.8 GB of max_slot_wal_keep_size 2.0 GB: bring the link back, or raise postgres.max_slot_wal_keep_size"}},
		{Flow: "yaounde → cloud", From: "yaounde", To: "cloud", Subscription: "sitectl_yaounde_to_cloud", State: StateUnknown, Reason: "the publisher could not be read", MaxSlotWALKeep: -1,
			Errors: []string{"cannot reach yaounde's PostgreSQL at 10.20.0.12:5432 as sitectl: connection refused"}},
		{Flow: "cloud → yaounde", From: "cloud", To: "yaounde", Subscription: "sitectl_cloud_to_yaounde", State: StateStalled, Reason: "no message for 6s", LagBytes: 4096, MaxSlotWALKeep: 2 << 30,
			Resolution: "check the link between cloud and yaounde (sitectl tunnels status): after wal_sender_timeout the publisher drops the connection and the subscription is disabled; once the link is back, sitectl replication resume (or deploy) re-enables it"},
	}}
	r.Flows[1].Resolution = r.Flows[1].Pending.Conflict.Resolution()
	var b strings.Builder
	if err := r.Render(&b); err != nil {
		t.Fatal(err)
	}
	golden.AssertString(t, "status.golden", b.String())
	if r.Healthy() {
		t.Error("a report with a conflict is not healthy")
	}
	r.Flows = r.Flows[:1]
	if !r.Healthy() {
		t.Error("one streaming flow is healthy")
	}
}

func TestClassify(t *testing.T) {
	sec := func(s float64) *time.Duration { d := time.Duration(s * float64(time.Second)); return &d }
	// A connected, idle flow whose subscriber reports every second.
	ok := Observed{PubRead: true, SubRead: true, SlotFound: true, SlotActive: true, SenderState: "streaming",
		SubFound: true, Enabled: true, Running: true, StatusInterval: time.Second, ReplyAge: sec(0.4), ReceiptAge: sec(12)}
	with := func(f func(*Observed)) Observed { o := ok; f(&o); return o }
	tests := []struct {
		name   string
		in     Observed
		state  string
		reason string
	}{
		{"connected and idle", ok, StateStreaming, ""},
		{"no reply yet (just connected)", with(func(o *Observed) { o.ReplyAge = nil; o.ReceiptAge = nil }), StateStreaming, ""},
		{"behind by more than 1 MB", with(func(o *Observed) { o.LagBytes = 2 << 20 }), StateCatchingUp, ""},
		{"walsender in catchup", with(func(o *Observed) { o.SenderState = "catchup" }), StateCatchingUp, ""},
		{"initial copy", with(func(o *Observed) { o.TablesSyncing = 2 }), StateSyncing, ""},
		{"silent both ways past 1s+4s", with(func(o *Observed) { o.ReplyAge = sec(6.2); o.ReceiptAge = sec(6.4) }), StateStalled, "no message for 6s"},
		{"silent both ways, lagging", with(func(o *Observed) { o.ReplyAge = sec(9); o.ReceiptAge = sec(20); o.LagBytes = 5 << 20 }), StateStalled, "no message for 9s"},
		{"publisher hears the subscriber", with(func(o *Observed) { o.ReplyAge = sec(0.5); o.ReceiptAge = sec(60) }), StateStreaming, ""},
		{"subscriber hears the publisher (busy apply)", with(func(o *Observed) { o.ReplyAge = sec(30); o.ReceiptAge = sec(0.1) }), StateStreaming, ""},
		{"just under the limit", with(func(o *Observed) { o.ReplyAge = sec(4.9); o.ReceiptAge = sec(4.9) }), StateStreaming, ""},
		{"default 10s interval: 12s is fine", with(func(o *Observed) { o.StatusInterval = 10 * time.Second; o.ReplyAge = sec(12); o.ReceiptAge = sec(12) }), StateStreaming, ""},
		{"default 10s interval: 15s stalls", with(func(o *Observed) { o.StatusInterval = 10 * time.Second; o.ReplyAge = sec(15); o.ReceiptAge = sec(15) }), StateStalled, "no message for 15s"},
		{"interval unknown counts as 10s", with(func(o *Observed) { o.StatusInterval = 0; o.ReplyAge = sec(8); o.ReceiptAge = sec(8) }), StateStreaming, ""},
		{"stalled while copying tables", with(func(o *Observed) { o.TablesSyncing = 1; o.ReplyAge = sec(8); o.ReceiptAge = sec(8) }), StateSyncing, ""},
		{"disabled by hand", with(func(o *Observed) { o.Enabled, o.Running, o.SlotActive = false, false, false }), StateDisabled, "the subscription is disabled"},
		{"disabled by an apply error", with(func(o *Observed) { o.Enabled, o.Running, o.Errors = false, false, 3 }), StateDisabledBy, "the subscription is disabled after an error"},
		{"disabled with a conflict waiting", with(func(o *Observed) { o.Enabled, o.Conflict = false, true }), StateDisabledBy, "the subscription is disabled after an error"},
		{"disabled, publisher unread", with(func(o *Observed) { o.Enabled, o.PubRead = false, false }), StateDisabled, "the subscription is disabled"},
		{"no subscription", with(func(o *Observed) { o.SubFound = false }), StateMissing, "no subscription at the subscriber"},
		{"no apply worker", with(func(o *Observed) { o.Running = false }), StateDown, "no apply worker runs at the subscriber"},
		{"slot inactive", with(func(o *Observed) { o.SlotActive = false }), StateDown, "no walsender streams from the slot"},
		{"slot gone", with(func(o *Observed) { o.SlotFound, o.SlotActive = false, false }), StateDown, "the publisher has no slot for it"},
		{"subscriber unread", with(func(o *Observed) { o.SubRead = false }), StateUnknown, "the subscriber could not be read"},
		{"publisher unread", with(func(o *Observed) { o.PubRead = false }), StateUnknown, "the publisher could not be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, reason := Classify(tt.in)
			if state != tt.state || reason != tt.reason {
				t.Errorf("Classify = %q, %q; want %q, %q", state, reason, tt.state, tt.reason)
			}
			if want := tt.state == StateStreaming || tt.state == StateCatchingUp || tt.state == StateSyncing; Working(state) != want {
				t.Errorf("Working(%q) = %v", state, Working(state))
			}
		})
	}
}

func TestStatusSummary(t *testing.T) {
	r := &Report{Flows: []FlowStatus{{Flow: "douala → cloud", State: StateStreaming}, {Flow: "cloud → douala", State: StateCatchingUp}, {Flow: "yaounde → cloud", State: StateSyncing}}}
	if got := r.Summary(); got != "✓ all 3 replication flows work (streaming, catching up or syncing)" || len(r.Failing()) != 0 {
		t.Errorf("summary %q, failing %v", got, r.Failing())
	}
	for _, bad := range []string{StateStalled, StateDisabledBy, StateDisabled, StateDown, StateMissing, StateUnknown} {
		r.Flows[1].State, r.Flows[1].Reason = bad, "why"
		if got, want := r.Summary(), "✗ 1 of 3 replication flows do not work: cloud → douala "+bad+" (why)"; got != want {
			t.Errorf("summary %q, want %q", got, want)
		}
	}
}
