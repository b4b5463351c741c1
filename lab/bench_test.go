package lab_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labtest"
)

// BenchmarkLab reports the lab's figures (root only; one lab per iteration):
// cold lab up (empty image cache: stand-in build, image layers, golden engine), lab
// down, warm lab up (cached images), the whole lab's memory (PSS of every lab
// process, idle, after warm up), and lab down again.
//
//	go test ./lab -run '^$' -bench BenchmarkLab -benchtime 1x
func BenchmarkLab(b *testing.B) {
	labtest.Skip(b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		if err := labtest.CopyConfig("../sites", dir+"/sites"); err != nil {
			b.Fatal(err)
		}
		opts := Options{ConfigDir: dir + "/sites", Prefix: "lbb", StateDir: DefaultStateDir + "-lbb", ImageCache: dir + "/cache"}
		if _, err := Down(ctx, opts); err != nil {
			b.Fatal(err)
		}
		timed := func(what string, fn func() error) float64 {
			start := time.Now()
			if err := fn(); err != nil {
				_, _ = Down(context.Background(), opts)
				b.Fatalf("%s: %v", what, err)
			}
			return time.Since(start).Seconds()
		}
		up := func() error { _, err := Up(ctx, opts); return err }
		down := func() error { _, err := Down(ctx, opts); return err }
		cold := timed("cold lab up", up)
		downCold := timed("lab down", down)
		warm := timed("warm lab up", up)
		time.Sleep(3 * time.Second) // let the engines settle
		st, err := GetStatus(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		downWarm := timed("lab down", down)
		cacheMB := dirSizeMB(opts.ImageCache)
		b.ReportMetric(cold, "s/cold-up")
		b.ReportMetric(warm, "s/warm-up")
		b.ReportMetric((downCold+downWarm)/2, "s/down")
		b.ReportMetric(st.MemoryMiB, "MiB/lab")
		b.ReportMetric(cacheMB, "MB/image-cache")
		b.Logf("cold up %.1fs, warm up %.1fs, down %.1fs / %.1fs, memory %.0f MiB (PSS), image cache %.0f MB",
			cold, warm, downCold, downWarm, st.MemoryMiB, cacheMB)
	}
}

func dirSizeMB(dir string) float64 {
	var total int64
	_ = walk(dir, func(fi os.FileInfo) { total += fi.Size() })
	return float64(total) / 1e6
}

func walk(dir string, fn func(os.FileInfo)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if e.IsDir() {
			_ = walk(dir+"/"+e.Name(), fn)
			continue
		}
		if fi.Mode().IsRegular() {
			fn(fi)
		}
	}
	return nil
}
