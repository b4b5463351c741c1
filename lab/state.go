package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// StateFile is the record of a lab inside its state dir.
const StateFile = "state.json"

// State records what lab up made, written ahead of each change so that Down can
// remove exactly that after a half-finished run or a crash.
type State struct {
	Prefix    string    `json:"prefix"`
	ConfigDir string    `json:"config_dir"`
	Layout    *Layout   `json:"layout"`
	StartedAt time.Time `json:"started_at"`
	// Complete is set when lab up finished; a state without it is stale or in progress.
	Complete bool `json:"complete"`
	// Namespaces are the namespaces this lab created (recorded before creation).
	Namespaces []string  `json:"namespaces"`
	Processes  []Process `json:"processes"`
	Images     []Image   `json:"images,omitempty"`
	// Files are files lab up wrote outside the state dir (the env overlay).
	Files []string `json:"files,omitempty"`
}

// Process is one daemon the lab started.
type Process struct {
	Name string `json:"name"` // dockerd douala-app1, charon douala
	NS   string `json:"namespace"`
	PID  int    `json:"pid"`
	// Start is the process start time in clock ticks since boot (/proc/<pid>/stat
	// field 22): with the PID it identifies the process, so a reused PID is not killed.
	Start uint64 `json:"start"`
	Log   string `json:"log"`
}

// Image is one lab image and whether it is the real service or a stand-in.
type Image struct {
	Logical string `json:"logical"` // kong, postgres, ...
	Ref     string `json:"ref"`     // sitectl-lab/postgres:15-<hash>
	Real    bool   `json:"real"`
	Source  string `json:"source"` // what it was built from
}

func statePath(dir string) string { return filepath.Join(dir, StateFile) }

// ReadState reads the lab's state; os.ErrNotExist when there is no lab.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("lab state %s is unreadable: %w (remove the lab with `sitectl lab down`)", statePath(dir), err)
	}
	return &s, nil
}

// save writes the state atomically.
func (s *State) save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(dir))
}

func (s *State) addNamespace(ns string) bool {
	for _, n := range s.Namespaces {
		if n == ns {
			return false
		}
	}
	s.Namespaces = append(s.Namespaces, ns)
	return true
}

func (s *State) process(name string) *Process {
	for i := range s.Processes {
		if s.Processes[i].Name == name {
			return &s.Processes[i]
		}
	}
	return nil
}

func (s *State) setProcess(p Process) {
	if old := s.process(p.Name); old != nil {
		*old = p
		return
	}
	s.Processes = append(s.Processes, p)
}

// procStat returns the fields of /proc/<pid>/stat after the command name (field 3
// onwards): the name (field 2) may hold spaces and parentheses.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, errors.New("unexpected /proc stat format")
	}
	return f, nil
}

// procStart returns the start time of pid (clock ticks since boot, field 22).
func procStart(pid int) (uint64, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// procPPID returns the parent of pid (field 4).
func procPPID(pid int) (int, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// Alive reports whether the recorded process still runs (same PID, same start).
func (p Process) Alive() bool {
	st, err := procStart(p.PID)
	return err == nil && st == p.Start
}
