package traffic

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sitectl/sitectl/lab/labtest"
)

// BenchmarkLabCapacity: the lab path's capacity per site (client → the site's
// Kong stand-in → its Django API → its PostgreSQL): sitectl load's generator
// steps the rate up on each site's entry point in turn (DefaultCapacity: 10 s a
// step, reads and writes 9:1) and reports the highest rate with p99 ≤ 200 ms
// and ≥ 99.9% success. Speed figures only: no assertion on them.
//
//	flock /tmp/sitectl-lab.lock go test -count=1 -p 1 -run '^$' -bench BenchmarkLabCapacity -benchtime 1x -v ./traffic/
func BenchmarkLabCapacity(b *testing.B) {
	l := labtest.Shared(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	topo := deployGateway(ctx, b, l)
	o := DefaultCapacity
	for i := 0; i < b.N; i++ {
		var caps []Capacity
		for _, site := range topo.SiteNames() {
			e, err := EntryOf(topo, topo.Site(site))
			if err != nil {
				b.Fatal(err)
			}
			// The gateway's first probes may still run: wait until its /api answers.
			waitServed(ctx, b, e)
			c, err := FindCapacity(ctx, e, o)
			if err != nil {
				b.Fatal(err)
			}
			caps = append(caps, c)
			b.ReportMetric(float64(c.Rate), site+"-req/s")
		}
		var out bytes.Buffer
		PrintCapacity(&out, caps, o)
		b.Log("\n" + out.String())
	}
}

// waitServed waits (up to 2 minutes) until e's /api/rows answers 200.
func waitServed(ctx context.Context, t testing.TB, e Entry) {
	t.Helper()
	c := e.Client(10*time.Second, 1)
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URLs[0]+"/api/rows?limit=1", nil)
		resp, err := c.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	t.Fatalf("%s: /api/rows through its gateway did not answer 200 within 2 minutes", e.Site)
}
