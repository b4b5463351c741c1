package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBarman puts on PATH a barman that answers from backup/testdata/barman (Barman
// 3.4's real JSON), with the backups' times moved to a minute ago; noStream answers
// replication-status with no WAL streamer.
func fakeBarman(t *testing.T, noStream bool) string {
	t.Helper()
	fixtures, err := filepath.Abs(filepath.Join("..", "..", "backup", "testdata", "barman"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	script := `#!/bin/sh
# barman -c CONF -f json COMMAND ...
now=$(date +%s)
if [ "$5" = replication-status ] && [ -n "` + map[bool]string{true: "x", false: ""}[noStream] + `" ]; then
	echo '{"douala": {"server_lsn": "0/7000000", "streaming_clients": []}}'
	exit 0
fi
sed -e "s/1796647641/$((now-60))/g" -e "s/1796647638/$((now-63))/g" -e "s/1796647603/$((now-120))/g" "` + fixtures + `/$5.json"
`
	if err := os.WriteFile(filepath.Join(bin, "barman"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return filepath.Join(bin, "barman.conf")
}

// TestBackupStatusCLI: backup status reads Barman's JSON and exits 1 when WAL
// streaming is broken; bad input gets one clear error.
func TestBackupStatusCLI(t *testing.T) {
	dir := exampleConfig(t, nil)
	base := []string{"--config-dir", dir, "--set", "douala:backup.server=cloud"}

	conf := fakeBarman(t, false)
	out, stderr, err := run(t, []string{"SITECTL_PG_PASSWORD=x"}, append(base, "backup", "status", "--site", "douala", "-o", "json", "--barman-config", conf)...)
	if err != nil {
		t.Fatalf("status with a healthy fake Barman: %v\n%s%s", err, out, stderr)
	}
	var sts []struct {
		Site      string   `json:"site"`
		Streaming bool     `json:"streaming"`
		Backups   int      `json:"backups"`
		Problems  []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &sts); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if len(sts) != 1 || sts[0].Site != "douala" || !sts[0].Streaming || sts[0].Backups != 2 || len(sts[0].Problems) != 0 {
		t.Fatalf("status: %+v", sts)
	}

	conf = fakeBarman(t, true)
	out, _, err = run(t, nil, append(base, "backup", "status", "--all", "--barman-config", conf)...)
	if exitCode(err) != 1 || !strings.Contains(out, "✗ douala: WAL streaming is not running") {
		t.Fatalf("status with streaming stopped: want exit 1 naming WAL streaming, got %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no barman config", []string{"backup", "status", "--site", "douala"}, "--barman-config is empty"},
		{"site not backed up", []string{"backup", "status", "--site", "yaounde", "--barman-config", conf}, "none of the selected sites is backed up (backed up: douala)"},
		{"bad time", []string{"restore", "--site", "douala", "--time", "yesterday", "--barman-config", conf}, `--time "yesterday": give a time as`},
	} {
		_, _, err := run(t, nil, append(base, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error saying %q, got %v", tc.name, tc.want, err)
		}
	}
}
