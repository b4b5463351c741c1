// Package progress prints the progress of long work to stderr: one "✓ step (1.2s)" or
// "✗ step: error" line per step, so stdout stays for results. A nil *Printer is
// silent, which is what -q and tests use.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Printer writes progress lines. It is safe for concurrent use (sites deploy in
// parallel and each reports its own steps).
type Printer struct {
	w   io.Writer
	mu  sync.Mutex
	now func() time.Time

	// The live status block (live.go).
	live   bool
	width  int
	keys   []string
	status map[string]string
	drawn  int
}

// New returns a Printer writing to w; nil w gives a silent Printer. On a terminal
// its Status lines are redrawn in place.
func New(w io.Writer) *Printer {
	if w == nil {
		return nil
	}
	p := &Printer{w: w, now: time.Now}
	p.live, p.width = liveTerminal(w)
	return p
}

// Step starts a step and returns the function that ends it with its outcome.
// The line is written when the step ends, with its duration.
func (p *Printer) Step(format string, args ...any) func(err error) {
	if p == nil {
		return func(error) {}
	}
	msg := fmt.Sprintf(format, args...)
	start := p.now()
	return func(err error) {
		d := p.now().Sub(start).Round(10 * time.Millisecond)
		if err != nil {
			p.printf("✗ %s (%s): %v\n", msg, d, err)
			return
		}
		p.printf("✓ %s (%s)\n", msg, d)
	}
}

// Infof writes one informational line ("  " indented).
func (p *Printer) Infof(format string, args ...any) {
	if p == nil {
		return
	}
	p.printf("  "+format+"\n", args...)
}

// Warnf writes one warning line.
func (p *Printer) Warnf(format string, args ...any) {
	if p == nil {
		return
	}
	p.printf("! "+format+"\n", args...)
}

func (p *Printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear() // a line goes above the live block, which is drawn again under it
	fmt.Fprintf(p.w, format, args...)
	if p.live {
		p.draw()
	}
}
