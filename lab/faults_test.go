package lab_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/lab"
	"github.com/sitectl/sitectl/lab/labtest"
)

// Faults that stop lab up before it builds anything: each names the problem and the
// fix, and lab down clears what was left.
func TestLabFaults(t *testing.T) {
	labtest.Skip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := testOptions(t)
	if _, err := lab.Down(ctx, opts); err != nil {
		t.Fatal(err)
	}

	t.Run("namespace in use", func(t *testing.T) {
		ns := testPrefix + "-wan"
		if err := runCmd("ip", "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		_, err := lab.Up(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), ns+" already exists") || !strings.Contains(err.Error(), "lab down") {
			t.Errorf("lab up with %s taken: %v", ns, err)
		}
		if !netns.Exists(ns) {
			t.Errorf("lab up removed a namespace it did not make")
		}
		// lab down (no state) removes a namespace of the lab's names.
		res, err := lab.Down(ctx, opts)
		if err != nil || len(res.Namespaces) != 1 || netns.Exists(ns) {
			t.Errorf("lab down after a crash before the first record: %+v %v", res, err)
		}
	})

	t.Run("stale state", func(t *testing.T) {
		if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(lab.State{Prefix: testPrefix, ConfigDir: opts.ConfigDir, Complete: false})
		if err := os.WriteFile(filepath.Join(opts.StateDir, lab.StateFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := lab.Up(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), "did not finish") || !strings.Contains(err.Error(), "sitectl lab down --prefix "+testPrefix) {
			t.Errorf("lab up over stale state: %v", err)
		}
		if _, err := lab.Down(ctx, opts); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(opts.StateDir); !os.IsNotExist(err) {
			t.Errorf("lab down left the stale state dir")
		}
	})

	t.Run("status without a lab", func(t *testing.T) {
		_, err := lab.GetStatus(ctx, opts)
		if err == nil || !strings.Contains(err.Error(), "no lab is up") || !strings.Contains(err.Error(), "sitectl lab up") {
			t.Errorf("status with no lab: %v", err)
		}
	})

	t.Run("site the config lacks", func(t *testing.T) {
		o := opts
		o.Sites = []string{"paris"}
		_, err := lab.Up(ctx, o)
		if err == nil || !strings.Contains(err.Error(), `no site "paris"`) {
			t.Errorf("lab up --sites paris: %v", err)
		}
		if _, err := os.Stat(o.StateDir); !os.IsNotExist(err) {
			t.Errorf("a refused lab up left a state dir")
		}
	})
}

func runCmd(name string, args ...string) error {
	return exec.Command(name, args...).Run()
}
