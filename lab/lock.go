package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// lock takes an exclusive lock next to the state dir so two lab commands never work
// on one lab at once; it waits for the other to finish.
func lock(stateDir string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(stateDir), 0o755); err != nil {
		return nil, err
	}
	return flock(stateDir + ".lock")
}

// flock takes an exclusive flock on path, waiting for it.
func flock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	}, nil
}

func sortStrings(s []string) { sort.Strings(s) }
