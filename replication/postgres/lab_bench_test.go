package postgres

import (
	"context"
	"testing"
	"time"
)

// BenchmarkLabCatchUp measures how fast replication catches up after a partition:
// douala is cut off, writes 100,000 rows (1,000 per transaction), the link heals,
// and the subscriptions the cut disabled are resumed. Reported: seconds until the
// hub and until every site hold all rows, and the catch-up rate in rows/s.
// Run with: go test -run '^$' -bench LabCatchUp -benchtime 1x ./replication/postgres
func BenchmarkLabCatchUp(b *testing.B) {
	const rows = 100_000
	ctx := context.Background()
	l := startLab(b)
	l.reconcile(ctx)
	l.waitStreaming(60 * time.Second)
	var hubTotal, allTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		base := l.queryInt("douala", `SELECT count(*) FROM public.orders`)
		l.cutSite("douala")
		for done := 0; done < rows; done += 1000 {
			l.exec("douala", `INSERT INTO public.orders (id, site, amount) SELECT gen_random_uuid(), 'douala', g FROM generate_series(1, 1000) g`)
		}
		want := base + rows
		l.heal()
		b.StartTimer()
		healed := time.Now()
		if _, err := Resume(ctx, l.topo, l.sess); err != nil {
			b.Fatal(err)
		}
		var hub time.Duration
		for {
			c := l.queryInt("cloud", `SELECT count(*) FROM public.orders`)
			y := l.queryInt("yaounde", `SELECT count(*) FROM public.orders`)
			if hub == 0 && c >= want {
				hub = time.Since(healed)
			}
			if c >= want && y >= want {
				break
			}
			if time.Since(healed) > 5*time.Minute {
				b.Fatalf("no catch-up after 5 minutes: cloud %d, yaounde %d of %d\n%s", c, y, want, l.statusText())
			}
			time.Sleep(50 * time.Millisecond)
		}
		all := time.Since(healed)
		b.StopTimer()
		hubTotal += hub
		allTotal += all
		l.waitConverged("public.orders", want, time.Minute)
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(hubTotal.Seconds()/n, "s-to-hub")
	b.ReportMetric(allTotal.Seconds()/n, "s-to-all")
	b.ReportMetric(rows*n/allTotal.Seconds(), "rows/s")
}
