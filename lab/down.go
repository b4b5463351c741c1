package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
)

// DownResult lists what lab down removed.
type DownResult struct {
	Processes  int      `json:"processes_killed"`
	Namespaces []string `json:"namespaces_removed"`
	Files      []string `json:"files_removed"`
	StateDir   string   `json:"state_dir_removed,omitempty"`
}

// Down removes everything lab up made for this prefix and state dir: processes (the
// recorded daemons and everything running in the lab's namespaces, with their
// descendants), namespaces (and with them every interface, route and iptables rule
// inside), the env overlay it wrote, and the state dir. It works after a half-finished
// up and after a crash; with no lab it does nothing.
func Down(ctx context.Context, opts Options) (*DownResult, error) {
	opts.defaults()
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root: run `sudo sitectl lab down`")
	}
	unlock, err := lock(opts.StateDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := ReadState(opts.StateDir)
	var fallback *Layout
	switch {
	case errors.Is(err, os.ErrNotExist):
		// No record (a crash before the first save, or a removed state dir): the
		// namespaces a lab of this prefix would have, from the config.
		if topo, terr := LoadTopology(opts.ConfigDir); terr == nil {
			fallback, _ = NewLayout(topo, nil, opts.Prefix, opts.StateDir)
		}
		st = &State{Prefix: opts.Prefix}
	case err != nil:
		// An unreadable record: still remove what the config says the lab has.
		if topo, terr := LoadTopology(opts.ConfigDir); terr == nil {
			fallback, _ = NewLayout(topo, nil, opts.Prefix, opts.StateDir)
		}
		st = &State{Prefix: opts.Prefix}
	}
	res := &DownResult{}
	err = down(ctx, opts, st, fallback, res)
	return res, err
}

// down removes the recorded lab (plus, with fallback, the fallback layout's
// namespaces that exist).
func down(ctx context.Context, opts Options, st *State, fallback *Layout, res ...*DownResult) error {
	r := &DownResult{}
	if len(res) > 0 && res[0] != nil {
		r = res[0]
	}
	p := opts.Progress
	nsSet := map[string]bool{}
	for _, ns := range st.Namespaces {
		nsSet[ns] = true
	}
	for _, l := range []*Layout{st.Layout, fallback} {
		if l == nil {
			continue
		}
		for _, ns := range l.Namespaces() {
			if _, err := os.Stat(netns.Path(ns)); err == nil {
				nsSet[ns] = true
			}
		}
	}
	var namespaces []string
	for ns := range nsSet {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)

	var errs []error
	done := p.Step("stop lab processes")
	n, err := killLab(ctx, st.Processes, namespaces)
	r.Processes = n
	done(err)
	if err != nil {
		errs = append(errs, err)
	}

	done = p.Step("remove %d namespace(s)", len(namespaces))
	var nsErrs []error
	for _, ns := range namespaces {
		if _, err := os.Stat(netns.Path(ns)); err != nil {
			continue
		}
		if err := runIP(ctx, "netns", "del", ns); err != nil {
			nsErrs = append(nsErrs, err)
			continue
		}
		r.Namespaces = append(r.Namespaces, ns)
	}
	for _, ns := range namespaces {
		removeResolvConf(ns)
	}
	_ = os.Remove("/etc/netns") // only when empty: other tools keep theirs there

	done(errors.Join(nsErrs...))
	errs = append(errs, nsErrs...)

	// Mounts of the lab live in the daemons' private mount namespaces and went with
	// them; anything still mounted under the state dir in this namespace is removed.
	for _, m := range mountsUnder(opts.StateDir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	for _, f := range st.Files {
		if err := os.Remove(f); err == nil {
			r.Files = append(r.Files, f)
		}
	}
	if envFile := filepath.Join(st.ConfigDir, ".sitectl-env"); st.ConfigDir != "" {
		if b, err := os.ReadFile(envFile); err == nil && strings.TrimSpace(string(b)) == EnvName {
			if os.Remove(envFile) == nil {
				r.Files = append(r.Files, envFile)
			}
		}
	}
	if _, err := os.Stat(opts.StateDir); err == nil {
		done = p.Step("remove state dir %s", opts.StateDir)
		err := os.RemoveAll(opts.StateDir)
		done(err)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove state dir: %w", err))
		} else {
			r.StateDir = opts.StateDir
		}
	}
	_ = os.Remove(opts.StateDir + ".lock")
	if len(errs) > 0 {
		return fmt.Errorf("lab down: %w", errors.Join(errs...))
	}
	return nil
}

// killLab kills the recorded daemons that still run as recorded, every process in the
// lab's namespaces, and all their descendants (containers run in namespaces of their
// own below the engines' shims). Everything is killed at once: the state goes with the
// lab, so there is nothing to shut down gracefully.
func killLab(ctx context.Context, procs []Process, namespaces []string) (int, error) {
	killed := map[int]bool{}
	deadline := time.Now().Add(8 * time.Second)
	for round := 0; ; round++ {
		roots := map[int]bool{}
		for _, p := range procs {
			if p.Alive() {
				roots[p.PID] = true
			}
		}
		inNS, err := netns.PIDs(namespaces...)
		if err != nil {
			return len(killed), err
		}
		for _, pid := range inNS {
			roots[pid] = true
		}
		all := withDescendants(roots)
		delete(all, os.Getpid())
		live := 0
		for pid := range all {
			if !alive(pid) {
				continue
			}
			live++
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed[pid] = true
		}
		if live == 0 {
			return len(killed), nil
		}
		if time.Now().After(deadline) {
			return len(killed), fmt.Errorf("%d lab process(es) would not die", live)
		}
		select {
		case <-ctx.Done():
			return len(killed), ctx.Err()
		case <-time.After(time.Duration(20*(round+1)) * time.Millisecond):
		}
	}
}

// alive is false for gone and zombie processes.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// withDescendants returns roots and every process below them.
func withDescendants(roots map[int]bool) map[int]bool {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if ppid, err := procPPID(pid); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := map[int]bool{}
	var walk func(int)
	walk = func(pid int) {
		if out[pid] {
			return
		}
		out[pid] = true
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for pid := range roots {
		walk(pid)
	}
	return out
}

// mountsUnder lists mount points at or below dir in this mount namespace, deepest
// first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := fields[4]
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}
