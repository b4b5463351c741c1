package traffic

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// CapacityOptions are a capacity search's settings: the rates tried, in
// ascending order, each for Step, and the bar a step must meet.
type CapacityOptions struct {
	Rates   []int
	Step    time.Duration
	Mix     Mix
	P99     time.Duration // a step passes when its p99 is at most this
	Success float64       // and its success share at least this
	// Pause between steps (the site drains what the last step queued).
	Pause time.Duration
	// Warmup runs the first rate this long first, not counted: the gateway's
	// and the API's connections are opened before the first step measures.
	Warmup time.Duration
	// Tries is how many times a step is run before it counts as failed (a
	// single stall of a shared machine moves a 10 s step's p99); 0 means 1.
	Tries int
}

// DefaultCapacity is issue 25's bar: requests/s at p99 ≤ 200 ms with
// ≥ 99.9% of the requests answered 2xx, reads and writes 9:1, 10 s a step.
var DefaultCapacity = CapacityOptions{
	Rates: []int{10, 25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1200},
	Step:  10 * time.Second, Mix: Mix{Read: 9, Write: 1},
	P99: 200 * time.Millisecond, Success: 0.999, Pause: 2 * time.Second,
	Warmup: 5 * time.Second, Tries: 2,
}

// Step is one rate's figures in a capacity search.
type Step struct {
	Rate   int    `json:"rate"`
	Result Result `json:"result"`
	Pass   bool   `json:"pass"`
	Why    string `json:"why,omitempty"` // why it did not pass
}

// Capacity is one site's capacity: the highest rate that passed (0: none) and
// every step run.
type Capacity struct {
	Site  string `json:"site"`
	Rate  int    `json:"rate"`
	Steps []Step `json:"steps"`
}

// FindCapacity steps the rate up on e's entry point (sitectl load's generator)
// and stops at the first step that fails the bar Tries times: the capacity is
// the last rate that passed.
func FindCapacity(ctx context.Context, e Entry, o CapacityOptions) (Capacity, error) {
	if o.Warmup > 0 && len(o.Rates) > 0 {
		if _, err := Run(ctx, []Entry{e}, Options{Rate: o.Rates[0], Duration: o.Warmup, Mix: o.Mix}); err != nil {
			return Capacity{Site: e.Site}, err
		}
	}
	return findCapacity(ctx, e.Site, o, func(rate int) (Result, error) {
		res, err := Run(ctx, []Entry{e}, Options{Rate: rate, Duration: o.Step, Mix: o.Mix})
		if err != nil {
			return Result{}, err
		}
		return res[0], nil
	})
}

func findCapacity(ctx context.Context, site string, o CapacityOptions, run func(rate int) (Result, error)) (Capacity, error) {
	c := Capacity{Site: site}
	for i, rate := range o.Rates {
		if rate <= 0 || i > 0 && rate <= o.Rates[i-1] {
			return c, fmt.Errorf("capacity rates %v: want them above 0 and ascending", o.Rates)
		}
	}
	for _, rate := range o.Rates {
		pass := false
		for try := 0; try < max(o.Tries, 1) && !pass; try++ {
			if len(c.Steps) > 0 && o.Pause > 0 {
				select {
				case <-ctx.Done():
					return c, ctx.Err()
				case <-time.After(o.Pause):
				}
			}
			res, err := run(rate)
			if err != nil {
				return c, err
			}
			st := Step{Rate: rate, Result: res, Why: o.fails(rate, res)}
			st.Pass = st.Why == ""
			c.Steps = append(c.Steps, st)
			pass = st.Pass
		}
		if !pass {
			break
		}
		c.Rate = rate
	}
	return c, nil
}

// fails says why res does not meet the bar at rate ("" when it does).
func (o CapacityOptions) fails(rate int, res Result) string {
	want := float64(rate) * o.Step.Seconds()
	switch {
	case res.Requests == 0:
		return "no request sent"
	case float64(res.Requests) < 0.95*want:
		// The generator could not keep the rate: the step measured less than asked.
		return fmt.Sprintf("sent %d of %.0f requests", res.Requests, want)
	case res.Success < o.Success:
		return fmt.Sprintf("success %.2f%% < %.1f%%", 100*res.Success, 100*o.Success)
	case res.P99 > o.P99:
		return fmt.Sprintf("p99 %s > %s", res.P99.Round(time.Millisecond), o.P99)
	}
	return ""
}

// PrintCapacity writes each site's steps and its capacity as a table.
func PrintCapacity(w io.Writer, caps []Capacity, o CapacityOptions) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SITE\tRATE\tSENT\tOK/S\tSUCCESS\tP50\tP99\tMAX\tERRORS\tBAR (p99 ≤ %s, success ≥ %.1f%%)\n", o.P99, 100*o.Success)
	for _, c := range caps {
		for _, s := range c.Steps {
			r := s.Result
			bar := "pass"
			if !s.Pass {
				bar = "FAIL: " + s.Why
			}
			errs := ""
			for _, k := range r.ErrKinds() {
				errs += fmt.Sprintf("%s ×%d ", k, r.Errors[k])
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.2f%%\t%s\t%s\t%s\t%s\t%s\n", c.Site, s.Rate, r.Requests, r.Throughput, 100*r.Success,
				r.P50.Round(100*time.Microsecond), r.P99.Round(100*time.Microsecond), r.Max.Round(100*time.Microsecond), errs, bar)
		}
	}
	_ = tw.Flush()
	for _, c := range caps {
		fmt.Fprintf(w, "capacity %s: %d requests/s (the highest rate with p99 ≤ %s and success ≥ %.1f%%)\n", c.Site, c.Rate, o.P99, 100*o.Success)
	}
}
