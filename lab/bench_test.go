package lab_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/lab"
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
		opts := lab.Options{ConfigDir: dir + "/sites", Prefix: "lbb", StateDir: lab.DefaultStateDir + "-lbb", ImageCache: dir + "/cache"}
		if _, err := lab.Down(ctx, opts); err != nil {
			b.Fatal(err)
		}
		timed := func(what string, fn func() error) float64 {
			start := time.Now()
			if err := fn(); err != nil {
				_, _ = lab.Down(context.Background(), opts)
				b.Fatalf("%s: %v", what, err)
			}
			return time.Since(start).Seconds()
		}
		up := func() error { _, err := lab.Up(ctx, opts); return err }
		down := func() error { _, err := lab.Down(ctx, opts); return err }
		cold := timed("cold lab up", up)
		downCold := timed("lab down", down)
		warm := timed("warm lab up", up)
		time.Sleep(3 * time.Second) // let the engines settle
		st, err := lab.GetStatus(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		// The same lab running a site's worth of services on every node: a real
		// PostgreSQL and Django API, and the stand-ins.
		loaded := withWorkload(ctx, b, opts)
		downWarm := timed("lab down", down)
		cacheMB := dirSizeMB(opts.ImageCache)
		b.ReportMetric(cold, "s/cold-up")
		b.ReportMetric(warm, "s/warm-up")
		b.ReportMetric((downCold+downWarm)/2, "s/down")
		b.ReportMetric(st.MemoryMiB, "MiB/lab")
		b.ReportMetric(loaded, "MiB/lab-with-services")
		b.ReportMetric(cacheMB, "MB/image-cache")
		b.Logf("cold up %.1fs, warm up %.1fs, down %.1fs / %.1fs, memory %.0f MiB idle, %.0f MiB with services (PSS), image cache %.0f MB",
			cold, warm, downCold, downWarm, st.MemoryMiB, loaded, cacheMB)
	}
}

// withWorkload starts on every node PostgreSQL, the Django API and five stand-ins,
// waits for them to settle and returns the lab's memory (PSS, MiB).
func withWorkload(ctx context.Context, b *testing.B, opts lab.Options) float64 {
	b.Helper()
	st, err := lab.ReadState(opts.StateDir)
	if err != nil {
		b.Fatal(err)
	}
	pw := opts.StateDir + "/secrets/postgres-password"
	for _, s := range st.Layout.Sites {
		for _, n := range s.Nodes {
			addr := strings.Split(n.Address, "/")[0]
			runs := [][]string{
				{"--name", "pg", "-v", pw + ":/run/secrets/pg:ro", "-e", "POSTGRES_PASSWORD_FILE=/run/secrets/pg", "-e", "POSTGRES_USER=sitectl", "-e", "POSTGRES_DB=app", "-p", "5432:5432", "sitectl-lab/postgres:15"},
				{"--name", "api", "-v", pw + ":/run/secrets/pg:ro", "-e", "SITE_ID=" + s.Name, "-e", "DB_HOST=" + addr, "-e", "DB_USER=sitectl", "-e", "DB_NAME=app", "-e", "DB_PASSWORD_FILE=/run/secrets/pg", "sitectl-lab/django-api:lab"},
			}
			for _, sv := range []string{"kong", "elasticsearch", "kibana", "grafana", "mongo"} {
				runs = append(runs, []string{"--name", sv, "sitectl-lab/" + sv + ":standin"})
			}
			for _, r := range runs {
				cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", n.Engine(), "run", "-d"}, r...)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%s: docker run %v: %v: %s", n.Name, r, err, out)
				}
			}
		}
	}
	time.Sleep(20 * time.Second)
	full, err := lab.GetStatus(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	return full.MemoryMiB
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
