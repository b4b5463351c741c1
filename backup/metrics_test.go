package backup

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/golden"
)

// python3 is the interpreter the Barman image runs the exporter with: Barman's own
// (Debian's python3, installed with barman by hack/install-deps.sh).
func python3(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("python3 is missing: run hack/install-deps.sh (barman brings it)")
	return ""
}

// exporterOnce runs the exporter's --once collection for sites against a fake
// barman answering from testdata/barman (Barman 3.4's real JSON): douala as
// captured, yaounde failing without JSON; mode "nostream" answers douala's
// replication-status with no streamer and its check with the slot FAILED.
func exporterOnce(t *testing.T, mode string, sites ...string) (string, time.Time, time.Time) {
	t.Helper()
	py := python3(t)
	fixtures, err := filepath.Abs(filepath.Join("testdata", "barman"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := `#!/bin/sh
# barman -f json COMMAND SITE
[ "$4" = douala ] || { echo "ERROR: Unknown server '$4'" >&2; exit 1; }
if [ "` + mode + `" = nostream ]; then
	case "$3" in
	replication-status) echo '{"douala": {"server_lsn": "0/7000000", "streaming_clients": []}}'; exit 0 ;;
	check) sed 's/"replication_slot": {"hint": "", "status": "OK"}/"replication_slot": {"hint": "slot lost", "status": "FAILED"}/' "` + fixtures + `/check.json"; exit 1 ;;
	esac
fi
cat "` + fixtures + `/$3.json"
`
	if err := os.WriteFile(filepath.Join(dir, "barman"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "barman-exporter")
	if err := os.WriteFile(prog, ExporterScript, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, append([]string{prog, "--once"}, sites...)...)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "BARMAN_CONFIG=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	before := time.Now()
	out, err := cmd.Output()
	after := time.Now()
	if err != nil {
		t.Fatalf("barman-exporter --once: %v\n%s", err, stderr.String())
	}
	return string(out), before, after
}

var timeVaries = regexp.MustCompile(`(?m)^((?:` + MetricLastBackupAge + `\{[^}]*\}|` + MetricCollectTime + `|` + MetricCollectDuration + `) )(\S+)$`)

// value is the sample of metric{site="site"} in text (the first match).
func value(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s in\n%s", series, text)
	return 0
}

// TestExporterMetrics: the exporter turns Barman's real JSON into the metrics the
// alert rules read: the newest DONE backup's end and size, its age at collection,
// WAL streaming through the site's slot and its write lag, the slot check; a site
// whose Barman fails has up 0 and nothing else; streaming stopped and a lost slot
// are 0. promtool accepts the output (when installed); goldens with the times that
// vary masked.
func TestExporterMetrics(t *testing.T) {
	out, before, after := exporterOnce(t, "", "douala", "yaounde")
	golden.Assert(t, "metrics/healthy.prom", []byte(timeVaries.ReplaceAllString(out, "${1}<varies>")))
	for series, want := range map[string]float64{
		`sitectl_backup_up{site="douala"}`:                                 1,
		`sitectl_backup_up{site="yaounde"}`:                                0,
		`sitectl_backup_base_backups{site="douala"}`:                       2,
		`sitectl_backup_last_base_backup_timestamp_seconds{site="douala"}`: 1796647641, // the newer of the two
		`sitectl_backup_last_base_backup_size_bytes{site="douala"}`:        47512576,
		`sitectl_backup_wal_streaming{site="douala"}`:                      1,
		`sitectl_backup_wal_lag_bytes{site="douala"}`:                      0,
		`sitectl_backup_slot_ok{site="douala"}`:                            1,
	} {
		if got := value(t, out, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	age := value(t, out, `sitectl_backup_last_base_backup_age_seconds{site="douala"}`)
	if lo, hi := float64(before.Unix()-1796647641), float64(after.Unix()-1796647641); age < lo || age > hi {
		t.Errorf("age %v, want between %v and %v (collection time minus the backup's end)", age, lo, hi)
	}
	if strings.Contains(out, `base_backups{site="yaounde"}`) || strings.Contains(out, `wal_streaming{site="yaounde"}`) {
		t.Errorf("a site whose Barman fails has series besides up:\n%s", out)
	}
	if pt, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(pt, "check", "metrics")
		cmd.Stdin = strings.NewReader(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, b)
		}
	}

	out, _, _ = exporterOnce(t, "nostream", "douala")
	golden.Assert(t, "metrics/nostream.prom", []byte(timeVaries.ReplaceAllString(out, "${1}<varies>")))
	for series, want := range map[string]float64{
		`sitectl_backup_wal_streaming{site="douala"}`: 0,
		`sitectl_backup_slot_ok{site="douala"}`:       0,
	} {
		if got := value(t, out, series); got != want {
			t.Errorf("streaming stopped: %s = %v, want %v", series, got, want)
		}
	}
	if strings.Contains(out, MetricWALLag) {
		t.Errorf("a lag while not streaming:\n%s", out)
	}
}
