package soak

import (
	"context"
	"fmt"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/traffic"
)

// Runner runs the soak's drills against the sites.
type Runner interface {
	// Step runs one fault as a drill: inject, write, always heal, converge and
	// verify, before it returns. ctx cancelled (Ctrl-C) makes the drill heal and
	// stop.
	Step(ctx context.Context, s Step) StepResult
	// Final verifies, from a fresh read, everything the soak wrote: every drill's
	// rows and every write made through the API.
	Final(ctx context.Context) drill.Verdict
}

// StepResult is one fault of the soak as it ran.
type StepResult struct {
	Step
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// InEffect and Removed are when the fault took effect and when it was gone.
	InEffect time.Time      `json:"in_effect,omitzero"`
	Removed  time.Time      `json:"removed,omitzero"`
	Held     *drill.Seconds `json:"held_s,omitempty"`
	Run      string         `json:"run,omitempty"` // the drill's run
	Passed   bool           `json:"passed"`
	Summary  string         `json:"summary"`
	// Acked, Lost and Duplicated are the drill's own rows; API* the writes made
	// through the API (with --load).
	Acked         int  `json:"acked"`
	Lost          int  `json:"lost"`
	Duplicated    int  `json:"duplicated"`
	APIAcked      int  `json:"api_acked"`
	APILost       int  `json:"api_lost"`
	APIDuplicated int  `json:"api_duplicated"`
	HealFailed    bool `json:"heal_failed"`
	Interrupted   bool `json:"interrupted"`
	// Failed lists the checks and required observations that failed.
	Failed       []string               `json:"failed,omitempty"`
	Availability []traffic.Availability `json:"availability,omitempty"`
}

// FromDrill sums up one step's drill report.
func FromDrill(s Step, started time.Time, r *drill.Report) StepResult {
	out := StepResult{Step: s, Started: started, Finished: r.Finished, Run: r.Run, Passed: r.Passed, Summary: r.Summary(),
		HealFailed: r.HealFailed, Interrupted: r.Interrupted, Availability: r.Availability}
	if w := r.Window; w != nil {
		out.InEffect, out.Removed, out.Held = w.InEffect, w.Removed, w.Held
	}
	if v := r.Verdict; v != nil {
		out.Acked, out.Lost, out.Duplicated = v.Acked, v.Lost, v.Duplicated
		out.Failed = append(out.Failed, failedChecks("", v.Checks)...)
	}
	if v := r.APIWrites; v != nil {
		out.APIAcked, out.APILost, out.APIDuplicated = v.Acked, v.Lost, v.Duplicated
		out.Failed = append(out.Failed, failedChecks("API writes: ", v.Checks)...)
	}
	out.Failed = append(out.Failed, failedChecks("preflight ", r.Preflight)...)
	for _, o := range r.Observations {
		if !o.OK && o.Required {
			out.Failed = append(out.Failed, o.What+": "+o.Detail)
		}
	}
	if r.Error != "" {
		out.Failed = append(out.Failed, r.Error)
	}
	return out
}

func failedChecks(prefix string, cs []drill.Check) []string {
	var out []string
	for _, c := range cs {
		if !c.Passed {
			out = append(out, prefix+c.Name+": "+c.Detail)
		}
	}
	return out
}

// Report is the soak's outcome.
type Report struct {
	Seed     uint64        `json:"seed"`
	Replay   string        `json:"replay"` // the flags that replay this schedule
	Duration drill.Seconds `json:"duration_s"`
	Faults   []string      `json:"faults"`
	Load     int           `json:"load,omitempty"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	// Planned is the schedule drawn from the seed; Steps the faults that ran
	// (the soak stops drawing at --duration, at the first failure or on Ctrl-C).
	Planned []Step       `json:"planned"`
	Steps   []StepResult `json:"steps"`
	// Final is the verification of everything written, after the last heal.
	Final *drill.Verdict `json:"final,omitempty"`
	// Lost and Duplicated are the totals over the steps and the final
	// verification (drill rows and API writes); both must be 0.
	Lost        int    `json:"lost"`
	Duplicated  int    `json:"duplicated"`
	APIAcked    int    `json:"api_acked"`
	Interrupted bool   `json:"interrupted"`
	Error       string `json:"error,omitempty"`
	Passed      bool   `json:"passed"`
}

// Options set a soak run.
type Options struct {
	Seed     uint64
	Replay   string
	Duration time.Duration
	Faults   []string
	Load     int
	// OnStep, when set, is called as each step starts and ends (progress).
	OnStep func(s Step, res *StepResult)
	now    func() time.Time
}

// Run runs the planned steps one at a time until d has passed since the start
// (a step started before then runs to its end), a step fails, or ctx is done;
// then, unless interrupted, the final verification.
func Run(ctx context.Context, planned []Step, r Runner, o Options) *Report {
	now := o.now
	if now == nil {
		now = time.Now
	}
	rep := &Report{Seed: o.Seed, Replay: o.Replay, Duration: drill.Seconds(o.Duration.Seconds()), Faults: o.Faults, Load: o.Load,
		Started: now(), Planned: planned, Steps: []StepResult{}}
	end := rep.Started.Add(o.Duration)
	for _, s := range planned {
		if ctx.Err() != nil || !now().Before(end) {
			break
		}
		if o.OnStep != nil {
			o.OnStep(s, nil)
		}
		res := r.Step(ctx, s)
		rep.Steps = append(rep.Steps, res)
		if o.OnStep != nil {
			o.OnStep(s, &res)
		}
		rep.Lost += res.Lost + res.APILost
		rep.Duplicated += res.Duplicated + res.APIDuplicated
		rep.APIAcked += res.APIAcked
		if res.Interrupted || ctx.Err() != nil {
			rep.Interrupted = true
			rep.Error = fmt.Sprintf("interrupted in step %s (%v): its fault was removed; nothing more was verified", s, context.Cause(ctx))
			break
		}
		if !res.Passed {
			rep.Error = fmt.Sprintf("step %s failed: %s; the soak stopped (its fault was removed)", s, res.Summary)
			break
		}
	}
	if ctx.Err() != nil && !rep.Interrupted {
		rep.Interrupted = true
		rep.Error = fmt.Sprintf("interrupted (%v); nothing more was verified", context.Cause(ctx))
	}
	if !rep.Interrupted && len(rep.Steps) > 0 {
		v := r.Final(ctx)
		rep.Final = &v
		rep.Lost += v.Lost
		rep.Duplicated += v.Duplicated
	}
	if len(rep.Steps) == 0 && rep.Error == "" {
		rep.Error = "no fault ran (--duration too short?)"
	}
	rep.Finished = now()
	rep.Passed = rep.Error == "" && !rep.Interrupted && rep.Final != nil && rep.Final.Passed && rep.Lost == 0 && rep.Duplicated == 0
	return rep
}

// Summary is the one-line outcome.
func (r *Report) Summary() string {
	verdict := "PASSED"
	switch {
	case r.Interrupted:
		verdict = "INTERRUPTED"
	case !r.Passed:
		verdict = "FAILED"
	}
	s := fmt.Sprintf("soak %s (seed %d): %d fault(s) in %.0fs, lost=%d duplicated=%d", verdict, r.Seed, len(r.Steps),
		r.Finished.Sub(r.Started).Seconds(), r.Lost, r.Duplicated)
	if r.Load > 0 {
		s += fmt.Sprintf(", %d write(s) through the API verified", r.APIAcked)
	}
	if r.Error != "" {
		s += " (" + r.Error + ")"
	}
	return s
}
