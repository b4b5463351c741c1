package drill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sitectl/sitectl/internal/progress"
)

// healer owns the links a drill has cut (or started to cut) and heals them exactly
// once, whatever ends the drill. It never uses the drill's context for healing: that
// context is the one SIGINT, SIGTERM or the timeout cancelled. Each try gets a fresh
// context with its own timeout, detached from the drill's cancellation.
type healer struct {
	resync   Resyncer // optional, run once the links are healed
	obs      Observer // watches for subscriptions that disable themselves again
	settings Settings
	rec      *recorder
	prog     *progress.Printer
	sleep    func(time.Duration)

	// journal, when set, holds the record of the faults: closed once every fault
	// is removed and replication resynced, kept when a removal failed.
	journal Journal

	mu      sync.Mutex
	pending []Fault
	times   []FaultTime // one per pending fault
	done    bool
	results []HealResult
	// removedAt is when the last fault was removed (before the replication resync).
	removedAt time.Time
	// recordErr says why the fault record could not be removed (or that it was
	// kept because a fault is still in place).
	recordErr string
}

// arm registers a fault for removal; call it before Inject, so a fault injected
// half-way (the SA deleted but the call not returned) is still removed. It returns
// the fault's index for injected.
func (h *healer) arm(f Fault, asked time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending = append(h.pending, f)
	h.times = append(h.times, FaultTime{Fault: f.Name(), Asked: asked})
	return len(h.pending) - 1
}

// injected notes when fault i took effect.
func (h *healer) injected(i int, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.times[i].InEffect = at
}

// faultTimes returns each armed fault's life so far.
func (h *healer) faultTimes() []FaultTime {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]FaultTime(nil), h.times...)
}

// healAll heals every armed link, retrying each up to HealAttempts times with growing
// backoff. It runs once; later calls return the first results.
func (h *healer) healAll(parent context.Context) []HealResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return h.results
	}
	h.done = true
	base := context.WithoutCancel(parent)
	for i := len(h.pending) - 1; i >= 0; i-- {
		f := h.pending[i]
		_, removed := f.Events()
		res := HealResult{Link: f.Name()}
		h.times[i].RemoveAsked = h.rec.now()
		end := h.prog.Step("%s %s", removed, f.Name())
		var err error
		backoff := h.settings.HealBackoff
		for res.Attempts < h.settings.HealAttempts {
			res.Attempts++
			ctx, cancel := context.WithTimeout(base, h.settings.HealTimeout)
			err = removeFault(ctx, f)
			cancel()
			if err == nil {
				break
			}
			if res.Attempts < h.settings.HealAttempts {
				h.prog.Warnf("%s %s (try %d of %d): %v; retrying in %s", removed, f.Name(), res.Attempts, h.settings.HealAttempts, err, backoff)
				h.sleep(backoff)
				backoff *= 2
			}
		}
		end(err)
		if err != nil {
			res.Error = err.Error()
			h.rec.event(EvHealFailed, f.Name(), fmt.Sprintf("after %d tries: %v", res.Attempts, err))
			h.prog.Warnf("HEAL FAILED: %s is still faulty after %d tries (%v). Restore it now: %s",
				f.Name(), res.Attempts, err, f.Manual())
		} else {
			res.Healed = true
			h.times[i].Removed = h.rec.event(removed, f.Name(), fmt.Sprintf("%s (%d tr%s)", removed, res.Attempts, plural(res.Attempts, "y", "ies")))
		}
		h.results = append(h.results, res)
	}
	h.removedAt = h.rec.now()
	if h.resync != nil && len(h.pending) > 0 && !healFailed(h.results) {
		h.results = append(h.results, h.resyncReplication(base))
	}
	h.closeJournal(base)
	return h.results
}

// closeJournal forgets the fault record once everything is back; a record of a
// fault still in place stays for `sitectl drill heal`.
func (h *healer) closeJournal(base context.Context) {
	if h.journal == nil {
		return
	}
	ctx, cancel := context.WithTimeout(base, h.settings.HealTimeout)
	defer cancel()
	if healFailed(h.results) {
		_ = h.journal.Close(ctx, true)
		h.recordErr = "the fault record stays in the swarm until `sitectl drill heal` removes what is left"
		h.prog.Warnf("%s", h.recordErr)
		return
	}
	if err := h.journal.Close(ctx, false); err != nil {
		h.recordErr = fmt.Sprintf("every fault was removed but its record could not be: %v; run `sitectl drill heal` to clear it", err)
		h.prog.Warnf("%s", h.recordErr)
	}
}

// HealLeft removes faults a drill left behind (its process is gone), the way a
// drill removes its own: newest first, each with retries and fresh contexts, then
// the replication resync when resync is set. It returns one result per fault (and
// the resync's).
func HealLeft(ctx context.Context, faults []Fault, resync Resyncer, obs Observer, s Settings, prog *progress.Printer) []HealResult {
	h := &healer{resync: resync, obs: obs, settings: s.withDefaults(), rec: &recorder{now: time.Now}, prog: prog, sleep: time.Sleep}
	for _, f := range faults {
		h.arm(f, time.Time{})
	}
	return h.healAll(ctx)
}

// Healed reports whether every result healed.
func Healed(rs []HealResult) bool { return !healFailed(rs) }

// ResyncName is the heal entry of the replication resync.
const ResyncName = "replication resync"

func (h *healer) resyncReplication(base context.Context) HealResult {
	res := HealResult{Link: ResyncName}
	end := h.prog.Step("resync replication (enable subscriptions a lost connection disabled)")
	var err error
	var what string
	var whats []string
	for res.Attempts < h.settings.HealAttempts {
		res.Attempts++
		ctx, cancel := context.WithTimeout(base, h.settings.HealTimeout)
		what, err = h.resync.Resync(ctx)
		cancel()
		if err == nil {
			whats = append(whats, what)
			// An apply worker may notice its lost connection only now and disable
			// itself again: watch the flows for a moment, resync again if so.
			if !h.disabledSoon(base) {
				break
			}
			err = errors.New("a subscription disabled itself again after the resync")
		}
		if res.Attempts < h.settings.HealAttempts {
			h.sleep(h.settings.HealBackoff)
		}
	}
	what = strings.Join(whats, "; ")
	end(err)
	if err != nil {
		res.Error = err.Error()
		h.rec.event(EvHealFailed, ResyncName, err.Error())
		h.prog.Warnf("replication not resynced after the heal (%v): run sitectl deploy", err)
		return res
	}
	res.Healed = true
	h.rec.event(EvResync, "", what)
	return res
}

// resyncWatch is how long the flows are watched after a resync for a subscription
// that disables itself again.
const resyncWatch = 3 * time.Second

// disabledSoon reports whether a flow is (or becomes) disabled within resyncWatch.
func (h *healer) disabledSoon(base context.Context) bool {
	if h.obs == nil {
		return false
	}
	for end := time.Now().Add(resyncWatch); time.Now().Before(end); h.sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(base, 5*time.Second)
		flows, err := h.obs.Flows(ctx)
		cancel()
		if err != nil {
			continue
		}
		for _, f := range flows {
			if f.State == StateDisabled {
				return true
			}
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// healFailed reports whether any link stayed cut.
func healFailed(rs []HealResult) bool {
	for _, r := range rs {
		if !r.Healed {
			return true
		}
	}
	return false
}

// removeFault removes f; a panic in its Remove is that fault's error, so the other
// faults still heal.
func removeFault(ctx context.Context, f Fault) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("remove %s panicked: %v", f.Name(), r)
		}
	}()
	return f.Remove(ctx)
}
