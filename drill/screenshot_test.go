package drill

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestLabReportScreenshot renders the HTML report in headless Chromium and checks
// the picture: the cut window, both lag curves and the PASSED title are drawn.
func TestLabReportScreenshot(t *testing.T) {
	if testing.Short() {
		t.Skip("renders in headless Chromium; skipped under -short")
	}
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium)")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "drill.html")
	var buf bytes.Buffer
	if err := WriteHTML(&buf, sampleReport(true)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "drill.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1000,900", "--screenshot="+shot, "file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	count := map[[3]uint8]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			count[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8)}]++
		}
	}
	for name, c := range map[string][3]uint8{
		"cut window fill (#fbe3e3)":   {0xfb, 0xe3, 0xe3},
		"writes bar fill (#dce9f7)":   {0xdc, 0xe9, 0xf7},
		"lag curve cloud→douala":      {0x1f, 0x77, 0xb4},
		"lag curve douala→cloud":      {0xd6, 0x27, 0x28},
		"PASSED in the title (green)": {0x1a, 0x7f, 0x37},
	} {
		if count[c] < 50 {
			t.Errorf("%s: %d pixel(s) in the screenshot, want a visible area", name, count[c])
		}
	}
	// A 14 s drill cut from 0.5 s to 10.5 s: the cut window is about 614 units wide
	// and 18 high, so several thousand pixels.
	if n := count[[3]uint8{0xfb, 0xe3, 0xe3}]; n < 5000 {
		t.Errorf("the cut window covers %d pixels, want > 5000", n)
	}
}
