package traffic

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFindCapacity: the search steps up the rates and stops at the first step
// that misses the bar (p99, success, or the generator not sending the rate):
// the capacity is the last rate that passed.
func TestFindCapacity(t *testing.T) {
	o := CapacityOptions{Rates: []int{10, 20, 40, 80, 160}, Step: 10 * time.Second, P99: 200 * time.Millisecond, Success: 0.999}
	ok := func(rate int, p99 time.Duration) Result {
		return Result{Requests: uint64(rate * 10), Success: 1, P99: p99}
	}
	for _, tc := range []struct {
		name    string
		results map[int]Result
		want    int
		steps   int
		why     string
	}{
		{"p99 over the bar at 80", map[int]Result{10: ok(10, time.Millisecond), 20: ok(20, time.Millisecond), 40: ok(40, 150*time.Millisecond), 80: ok(80, 250*time.Millisecond), 160: ok(160, time.Millisecond)}, 40, 4, "p99 250ms > 200ms"},
		{"one failure in a thousand is too many", map[int]Result{10: ok(10, time.Millisecond), 20: {Requests: 200, Success: 0.995, P99: time.Millisecond}}, 10, 2, "success 99.50% < 99.9%"},
		{"the generator did not keep the rate", map[int]Result{10: {Requests: 50, Success: 1}}, 0, 1, "sent 50 of 100 requests"},
		{"every step passes", map[int]Result{10: ok(10, 1), 20: ok(20, 1), 40: ok(40, 1), 80: ok(80, 1), 160: ok(160, 1)}, 160, 5, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := findCapacity(context.Background(), "douala", o, func(rate int) (Result, error) { return tc.results[rate], nil })
			if err != nil {
				t.Fatal(err)
			}
			last := c.Steps[len(c.Steps)-1]
			if c.Rate != tc.want || len(c.Steps) != tc.steps || last.Why != tc.why || last.Pass != (tc.why == "") {
				t.Errorf("capacity %d after %d steps (last %+v), want %d after %d, last failing with %q", c.Rate, len(c.Steps), last, tc.want, tc.steps, tc.why)
			}
		})
	}
	// With two tries, a step that fails once and then passes counts; one that
	// fails twice ends the search.
	o.Tries = 2
	calls := map[int]int{}
	c, err := findCapacity(context.Background(), "douala", o, func(rate int) (Result, error) {
		calls[rate]++
		if rate == 20 && calls[rate] == 1 || rate == 40 {
			return ok(rate, time.Second), nil
		}
		return ok(rate, time.Millisecond), nil
	})
	if err != nil || c.Rate != 20 || len(c.Steps) != 5 || calls[40] != 2 || calls[80] != 0 {
		t.Errorf("two tries: capacity %d, %d steps, calls %v, %v; want 20 after 5 steps (10, 20 twice, 40 twice)", c.Rate, len(c.Steps), calls, err)
	}
	if _, err := findCapacity(context.Background(), "douala", CapacityOptions{Rates: []int{20, 10}}, func(int) (Result, error) { return ok(20, 1), nil }); err == nil {
		t.Error("rates 20, 10: no error, want one (not ascending)")
	}
}

// TestFindCapacityFailingSite: a gateway answering 503 has no capacity; the
// table says why.
func TestFindCapacityFailingSite(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer s.Close()
	o := CapacityOptions{Rates: []int{20, 40}, Step: 500 * time.Millisecond, Mix: Mix{Read: 1}, P99: 200 * time.Millisecond, Success: 0.999}
	c, err := FindCapacity(context.Background(), Entry{Site: "douala", URLs: []string{s.URL}, Insecure: true}, o)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	PrintCapacity(&b, []Capacity{c}, o)
	t.Log("\n" + b.String())
	if c.Rate != 0 || len(c.Steps) != 1 || c.Steps[0].Result.Errors["http 503"] == 0 ||
		!strings.Contains(b.String(), "FAIL: success 0.00% < 99.9%") || !strings.Contains(b.String(), "capacity douala: 0 requests/s") {
		t.Errorf("capacity %+v, table:\n%s\nwant 0 after one step failing on success", c, b.String())
	}
}
