package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/traffic"
)

// TestLoadRefusals: bad input to `sitectl load` is one clear error naming the flag
// or the site, before any request is sent (none of these reach an address).
func TestLoadRefusals(t *testing.T) {
	dir := exampleConfig(t, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"load", "--site", "douala", "--rate", "0", "--duration", "1s"}, "--rate is 0; want requests per second per site above 0"},
		{[]string{"load", "--site", "douala", "--rate", "-3", "--duration", "1s"}, "--rate is -3"},
		{[]string{"load", "--site", "douala", "--rate", "5", "--duration", "0s"}, "--duration is 0s"},
		{[]string{"load", "--site", "douala", "--rate", "5", "--duration", "1s", "--mix", "9"}, `--mix is "9"; want read:write`},
		{[]string{"load", "--site", "lagos", "--rate", "5", "--duration", "1s"}, "lagos"},
		{[]string{"drill", "db-down", "--site", "douala", "--load", "-1"}, "drill db-down: --load is -1; want requests/s per site above 0"},
		{[]string{"--set", "douala:stacks=postgres,django-api", "load", "--site", "douala", "--rate", "5", "--duration", "1s"}, "site douala has no entry point: it does not run the kong stack"},
	} {
		_, _, err := run(t, []string{}, append([]string{"--config-dir", dir, "--env", "dev"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sitectl %s: err %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// TestLoadHTMLFile: --report writes the page to the file named; a path that cannot
// be created is an error.
func TestLoadHTMLFile(t *testing.T) {
	rep := &traffic.Report{Rate: 5, Duration: time.Second, Mix: "9:1", Sites: []traffic.Result{
		{Site: "douala", Requests: 5, BucketWidth: time.Second, Buckets: []traffic.Bucket{{Requests: 5, OK: 5, P50: time.Millisecond, P99: 2 * time.Millisecond}}}}}
	path := filepath.Join(t.TempDir(), "load.html")
	if err := writeHTMLFile(path, rep, traffic.WriteHTML); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `<svg class="latency-chart" data-site="douala"`) {
		t.Errorf("%s has no latency chart for douala:\n%s", path, b)
	}
	if err := writeHTMLFile(filepath.Join(t.TempDir(), "no", "such", "dir.html"), rep, traffic.WriteHTML); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}
