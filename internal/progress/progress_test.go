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
