package progress

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/term"
)

// Live status: what a long wait is waiting for (a service's running/desired tasks
// and health), one line per key. On a terminal the lines form a block under the
// step lines that is redrawn in place as they change; elsewhere (a pipe, CI, a
// file) each change is one plain "  key text" line, as Infof writes.

// liveTerminal reports whether w is a terminal that understands cursor movement,
// and its width.
func liveTerminal(w io.Writer) (bool, int) {
	fd, isTerm := term.GetFdInfo(w)
	if !isTerm || os.Getenv("TERM") == "dumb" {
		return false, 0
	}
	width := 80
	if ws, err := term.GetWinsize(fd); err == nil && ws.Width > 0 {
		width = int(ws.Width)
	}
	return true, width
}

// NewLive returns a Printer that redraws its status block in place, as on a
// terminal of the given width, whatever w is.
func NewLive(w io.Writer, width int) *Printer {
	p := New(w)
	if p != nil {
		p.live, p.width = true, width
	}
	return p
}

// Status sets the live line of key (a site and service, say) to text.
func (p *Printer) Status(key, text string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.status[key]; ok && old == text {
		return
	}
	if p.status == nil {
		p.status = map[string]string{}
	}
	if _, ok := p.status[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.status[key] = text
	if !p.live {
		fmt.Fprintf(p.w, "  %s %s\n", key, text)
		return
	}
	p.clear()
	p.draw()
}

// Settle ends the live lines whose key starts with prefix: on a terminal their
// last text stays on screen as ordinary lines above the block; the next Status of
// such a key starts a new line.
func (p *Printer) Settle(prefix string) { p.end(prefix, true) }

// Drop ends the live lines whose key starts with prefix, erasing them from a
// terminal (a transient "still waiting" line whose outcome a step line reports).
func (p *Printer) Drop(prefix string) { p.end(prefix, false) }

func (p *Printer) end(prefix string, keep bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var done []string
	kept := p.keys[:0]
	for _, k := range p.keys {
		if strings.HasPrefix(k, prefix) {
			done = append(done, k)
		} else {
			kept = append(kept, k)
		}
	}
	p.keys = kept
	if p.live && len(done) > 0 {
		p.clear()
		for _, k := range done {
			if keep {
				fmt.Fprintf(p.w, "  %s %s\n", k, p.status[k])
			}
		}
		p.draw()
	}
	for _, k := range done {
		delete(p.status, k)
	}
}

// clear moves the cursor up over the drawn block and erases it.
func (p *Printer) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.drawn)
		p.drawn = 0
	}
}

// draw writes the block, one line per key, each cut to the width so that the
// number of lines to move up over is exact.
func (p *Printer) draw() {
	for _, k := range p.keys {
		line := "  " + k + " " + p.status[k]
		if r := []rune(line); p.width > 1 && len(r) > p.width-1 {
			line = string(r[:p.width-2]) + "…"
		}
		fmt.Fprintln(p.w, line)
	}
	p.drawn = len(p.keys)
}
