package traffic

import (
	"math"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// TestBuckets feeds one site's run known latencies: second 0 has 1000 requests of
// 1…1000 ms, second 1 none, second 2 fifty of 20 ms (ten of them failed), and a
// result that started before the run counts in the first second.
func TestBuckets(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := newSiteRun(Entry{Site: "douala"}, t0, 3*time.Second)
	for i := 1; i <= 1000; i++ { // arrival order is not start order
		j := 1001 - i
		r.add(&vegeta.Result{Timestamp: t0.Add(time.Duration(j) * 900 * time.Microsecond), Latency: time.Duration(j) * time.Millisecond, Code: 200})
	}
	for i := range 50 {
		code := uint16(200)
		if i%5 == 0 {
			code = 503
		}
		r.add(&vegeta.Result{Timestamp: t0.Add(2*time.Second + time.Duration(i)*time.Millisecond), Latency: 20 * time.Millisecond, Code: code})
	}
	r.add(&vegeta.Result{Timestamp: t0.Add(-time.Millisecond), Latency: 500 * time.Millisecond, Code: 200})

	res := r.result(true)
	if res.BucketWidth != time.Second || len(res.Buckets) != 3 {
		t.Fatalf("width %s, %d buckets %+v; want 1s and 3", res.BucketWidth, len(res.Buckets), res.Buckets)
	}
	b0, b1, b2 := res.Buckets[0], res.Buckets[1], res.Buckets[2]
	near := func(got time.Duration, want float64) bool { // within 1% (vegeta's t-digest)
		return math.Abs(float64(got)/float64(time.Millisecond)-want) <= want/100
	}
	if b0.Start != 0 || b0.Requests != 1001 || b0.OK != 1001 || !near(b0.P50, 500) || !near(b0.P99, 990) || b0.Max != time.Second {
		t.Errorf("second 0: %+v; want 1001 requests, all ok, p50 ≈ 500ms, p99 ≈ 990ms, max 1s", b0)
	}
	if b1.Start != time.Second || b1.Requests != 0 || b1.P50 != 0 || b1.P99 != 0 {
		t.Errorf("second 1: %+v; want no requests", b1)
	}
	if b2.Start != 2*time.Second || b2.Requests != 50 || b2.OK != 40 || b2.P50 != 20*time.Millisecond || b2.P99 != 20*time.Millisecond {
		t.Errorf("second 2: %+v; want 50 requests, 40 ok, p50 = p99 = 20ms", b2)
	}
	if p := r.result(false); p.Buckets != nil {
		t.Errorf("progress figures carry %d buckets, want none", len(p.Buckets))
	}
}

func TestBucketWidth(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		10 * time.Second: time.Second, 300 * time.Second: time.Second, 301 * time.Second: 2 * time.Second,
		time.Hour: 12 * time.Second, 0: time.Second,
	} {
		if got := BucketWidth(d); got != want {
			t.Errorf("BucketWidth(%s) = %s, want %s", d, got, want)
		}
	}
}

// TestBucketsBounded: a run far longer than asked (a slow pacer) keeps MaxBuckets.
func TestBucketsBounded(t *testing.T) {
	t0 := time.Now()
	b := newBuckets(t0, 10*time.Second)
	for s := range 2 * MaxBuckets {
		b.add(t0.Add(time.Duration(s)*time.Second), time.Millisecond, true)
	}
	if n := len(b.summary()); n != MaxBuckets {
		t.Fatalf("%d buckets, want at most %d", n, MaxBuckets)
	}
}
