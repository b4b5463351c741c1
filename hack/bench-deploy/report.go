package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sitectl/sitectl/sites"
)

// result is one measured run (zero durations for a side not run); alone is the
// slowest site deployed alone (-alone).
type result struct{ docker, first, again, alone time.Duration }

// summarize prints, over several runs, each ratio, the median, and how many runs
// met each goal: one run says little on a machine whose engines' timing varies.
func summarize(all []result, side string) {
	fmt.Printf("--- %d runs\n", len(all))
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		if n := len(v); n%2 == 1 {
			return v[n/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	var ratios, noops, projected []float64
	met, noopMet := 0, 0
	for _, r := range all {
		if r.alone > 0 && r.docker > 0 {
			projected = append(projected, r.alone.Seconds()/r.docker.Seconds())
		}
		if side == "" {
			x := r.first.Seconds() / r.docker.Seconds()
			ratios = append(ratios, x)
			if x <= 0.5 {
				met++
			}
		}
		if side != "docker" {
			y := r.again.Seconds() / r.first.Seconds()
			noops = append(noops, y)
			if y <= 0.05 {
				noopMet++
			}
		}
	}
	if len(ratios) > 0 {
		parts := make([]string, len(ratios))
		for i, x := range ratios {
			parts[i] = fmt.Sprintf("%.2f", x)
		}
		fmt.Printf("ratios sitectl/docker: %s; median %.2f; ≤ 0.50 in %d of %d\n", strings.Join(parts, " "), median(ratios), met, len(ratios))
	}
	if len(projected) > 0 {
		parts := make([]string, len(projected))
		for i, x := range projected {
			parts[i] = fmt.Sprintf("%.2f", x)
		}
		fmt.Printf("projected ratios with one machine per site: %s; median %.2f\n", strings.Join(parts, " "), median(projected))
	}
	if len(noops) > 0 {
		fmt.Printf("no-op/first deploy: median %.1f%%; ≤ 5%% in %d of %d\n", 100*median(noops), noopMet, len(noops))
	}
}

// onlineCPUs counts the cpuN lines of /proc/stat, the CPUs its first line sums
// (runtime.NumCPU follows this process's affinity instead).
func onlineCPUs() int {
	b, _ := os.ReadFile("/proc/stat")
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	return max(n, 1)
}

// busyCPU is the machine's CPU time spent not idle since boot, in seconds, from the
// first line of /proc/stat (0 where it cannot be read). Ten lines do not call for a
// procfs library in a benchmark command.
func busyCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 2 {
		return 0
	}
	busy := 0.0
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy / 100 // USER_HZ
}

// bySite formats one duration per site, in the topology's order.
func bySite(topo *sites.Topology, d []time.Duration) string {
	var out []string
	for i, s := range topo.Sites {
		if i < len(d) {
			out = append(out, fmt.Sprintf("%s %s", s.Name, d[i].Round(10*time.Millisecond)))
		}
	}
	return strings.Join(out, ", ")
}

// stamped prefixes each line with the seconds since start (-v: where the time goes).
type stamped struct {
	w     io.Writer
	start time.Time
	bol   bool
}

func (s *stamped) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if s.bol {
			out = fmt.Appendf(out, "%6.2fs ", time.Since(s.start).Seconds())
		}
		out = append(out, c)
		s.bol = c == '\n'
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
