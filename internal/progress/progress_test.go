package progress

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestStepLines(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf)
	clock := time.Unix(0, 0)
	p.now = func() time.Time { return clock }
	done := p.Step("create network %s", "data")
	clock = clock.Add(1500 * time.Millisecond)
	done(nil)
	p.Step("join node")(errors.New("boom"))
	p.Infof("x=%d", 1)
	want := "✓ create network data (1.5s)\n✗ join node (0s): boom\n  x=1\n"
	if buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
}

func TestNilPrinterIsSilent(t *testing.T) {
	var p *Printer
	p.Step("x")(nil)
	p.Infof("y")
	p.Warnf("z")
	if New(nil) != nil {
		t.Fatal("New(nil) should be a nil (silent) printer")
	}
}

func TestStatusPlainPrintsChangesOnly(t *testing.T) {
	var buf bytes.Buffer
	p := New(&buf) // a buffer is not a terminal: plain lines
	p.Status("douala: api", "0/1 running")
	p.Status("douala: api", "0/1 running")
	p.Status("douala: db", "1/1 running")
	p.Status("douala: api", "1/1 running")
	p.Settle("douala: ")
	p.Status("douala: api", "1/1 running") // a new wait starts a new line
	want := "  douala: api 0/1 running\n  douala: db 1/1 running\n  douala: api 1/1 running\n  douala: api 1/1 running\n"
	if buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
}

func TestStatusLiveRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	p := NewLive(&buf, 30)
	p.Status("douala: api", "0/1 running")
	p.Status("yaounde: api", "0/1 running, 1 starting (health check)")
	p.Infof("a line")
	p.Status("douala: api", "1/1 running")
	p.Settle("douala: ")
	want := "  douala: api 0/1 running\n" +
		"\x1b[1A\x1b[J" + "  douala: api 0/1 running\n  yaounde: api 0/1 running, …\n" + // cut to the width
		"\x1b[2A\x1b[J" + "  a line\n" + "  douala: api 0/1 running\n  yaounde: api 0/1 running, …\n" +
		"\x1b[2A\x1b[J" + "  douala: api 1/1 running\n  yaounde: api 0/1 running, …\n" +
		"\x1b[2A\x1b[J" + "  douala: api 1/1 running\n" + "  yaounde: api 0/1 running, …\n"
	if got := buf.String(); got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

func TestDropErasesLiveLines(t *testing.T) {
	var buf bytes.Buffer
	p := NewLive(&buf, 80)
	p.Status("converging:", "3 to go")
	p.Drop("converging:")
	p.Infof("done")
	want := "  converging: 3 to go\n\x1b[1A\x1b[J  done\n"
	if got := buf.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
