package traffic

import (
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Bucket is what one site's requests that started in one time slice of the run saw:
// their count, the successful ones, and their latency p50/p99/max (the latency over
// time of the load report).
type Bucket struct {
	Start    time.Duration `json:"start_ns"` // from the run's start
	Requests int           `json:"requests"`
	OK       int           `json:"ok"` // 2xx answers
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
}

// MaxBuckets bounds the time slices of one site's run: memory stays bounded (one
// t-digest, a few KB, per slice) whatever the duration and the rate.
const MaxBuckets = 300

// BucketWidth is the time slice for a run of d: 1 s, or as many whole seconds as
// keep the run within MaxBuckets slices.
func BucketWidth(d time.Duration) time.Duration {
	w := time.Second
	if n := (d + MaxBuckets*time.Second - 1) / (MaxBuckets * time.Second); n > 1 {
		w = n * time.Second
	}
	return w
}

// buckets aggregates results per time slice as they arrive; it keeps no result.
type buckets struct {
	start time.Time
	width time.Duration
	lat   []vegeta.LatencyMetrics // vegeta's own estimator (a t-digest), per slice
	req   []int
	ok    []int
}

func newBuckets(start time.Time, d time.Duration) *buckets {
	return &buckets{start: start, width: BucketWidth(d)}
}

// add counts one result in the slice in which its request started (before the
// start: the first; past the last slice: the last).
func (b *buckets) add(ts time.Time, latency time.Duration, ok bool) {
	i := min(max(int(ts.Sub(b.start)/b.width), 0), MaxBuckets-1)
	for len(b.req) <= i {
		b.lat = append(b.lat, vegeta.LatencyMetrics{})
		b.req = append(b.req, 0)
		b.ok = append(b.ok, 0)
	}
	b.lat[i].Add(latency)
	b.req[i]++
	if ok {
		b.ok[i]++
	}
}

// summary is every slice from the first to the last with a result (empty slices
// in between have no requests and zero latencies).
func (b *buckets) summary() []Bucket {
	out := make([]Bucket, len(b.req))
	for i := range b.req {
		out[i] = Bucket{Start: time.Duration(i) * b.width, Requests: b.req[i], OK: b.ok[i]}
		if b.req[i] > 0 {
			out[i].P50, out[i].P99, out[i].Max = b.lat[i].Quantile(0.5), b.lat[i].Quantile(0.99), b.lat[i].Max
		}
	}
	return out
}
