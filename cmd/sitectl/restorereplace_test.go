package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreReplaceRefusedOffTerminal: restore --replace with no terminal and no
// --i-understand-data-loss refuses before Barman is asked anything (nothing is
// restored, nothing changed), naming the flag and --dry-run.
func TestRestoreReplaceRefusedOffTerminal(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	if err := os.WriteFile(filepath.Join(bin, "barman"), []byte("#!/bin/sh\necho \"$@\" >> "+calls+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	args := []string{"--config-dir", exampleConfig(t, nil), "--set", "douala:backup.server=cloud", "restore", "--site", "douala",
		"--time", "2026-12-07T10:00:00Z", "--replace", "--barman-config", filepath.Join(bin, "barman.conf"), "--dir", t.TempDir()}
	_, _, err := run(t, []string{"SITECTL_PG_PASSWORD=x"}, args...)
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "--i-understand-data-loss") || !strings.Contains(err.Error(), "--dry-run") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("restore --replace off a terminal: want exit 1 naming --i-understand-data-loss and --dry-run, got %v", err)
	}
	if b, err := os.ReadFile(calls); err == nil {
		t.Fatalf("restore --replace refused, yet Barman was called: %s", b)
	}
}

// TestConfirmReplace: the flag confirms; on a terminal only the site's name typed
// does; off a terminal nothing does.
func TestConfirmReplace(t *testing.T) {
	saved := isTerminal
	t.Cleanup(func() { isTerminal = saved })
	for _, tc := range []struct {
		name       string
		terminal   bool
		understand bool
		typed      string
		want       bool
	}{
		{"flag", false, true, "", true},
		{"no terminal", false, false, "douala\n", false},
		{"terminal, site typed", true, false, "douala\n", true},
		{"terminal, other site typed", true, false, "yaounde\n", false},
		{"terminal, yes typed", true, false, "yes\n", false},
		{"terminal, no answer", true, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isTerminal = func(io.Reader) bool { return tc.terminal }
			var out bytes.Buffer
			ok, _ := confirmReplace(Streams{In: strings.NewReader(tc.typed), Out: &out}, "douala", tc.understand)
			if ok != tc.want {
				t.Fatalf("confirmed %v, want %v (asked: %q)", ok, tc.want, out.String())
			}
			if tc.terminal && !tc.understand && !strings.Contains(out.String(), `Type "douala"`) {
				t.Fatalf("on a terminal the site's name is asked for; printed %q", out.String())
			}
		})
	}
}
