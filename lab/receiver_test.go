package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/stacks/monitoring/alerts"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts/amtest"
)

// TestReceiverRecordsAlertmanagersPosts runs the lab's receiver script on loopback
// behind a real Alertmanager whose webhook carries the lab's bearer token: an alert
// posted to Alertmanager is recorded, marked authorized, and read back with
// alerts.Receiver; a post without the token is recorded unauthorized; the token is
// never written to the record.
func TestReceiverRecordsAlertmanagersPosts(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 (hack/install-deps.sh installs it with python3-django)")
	}
	dir := t.TempDir()
	script, token, record := filepath.Join(dir, "receiver.py"), filepath.Join(dir, "token"), filepath.Join(dir, "received.jsonl")
	const secret = "lab-hook-token-0123456789"
	for f, b := range map[string]string{script: receiverScript, token: secret + "\n"} {
		if err := os.WriteFile(f, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	port := amtest.FreePort(t)
	cmd := exec.Command("/usr/bin/python3", script, "127.0.0.1", fmt.Sprint(port), record, token)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	rc := alerts.Receiver{URL: url}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, err := rc.Received(context.Background()); err == nil && len(got) == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("receiver not answering: %v %v\n%s", got, err, log.String())
		}
	}
	am := amtest.Start(t, []byte(fmt.Sprintf(`route: {receiver: lab, group_by: [site], group_wait: 100ms, group_interval: 1s}
receivers:
  - name: lab
    webhook_configs:
      - url: %s/hook
        http_config: {authorization: {type: Bearer, credentials_file: %s}}
`, url, token)))
	amtest.Post(t, am, map[string]string{"alertname": "TunnelDown", "site": "douala", "link": "douala-cloud"})
	var got []alerts.Notification
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if got, err = rc.Received(context.Background()); err == nil && len(got) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing recorded: %v\n%s", err, log.String())
		}
	}
	n := got[0]
	if !n.Authorized || n.Status != "firing" || len(n.Alerts) != 1 || n.Alerts[0].Labels["link"] != "douala-cloud" ||
		time.Since(n.At) > time.Minute || time.Since(n.At) < 0 {
		t.Errorf("recorded: %+v", n)
	}
	// A post without the token is kept, and marked.
	resp, err := rc.HTTPOrDefault().Post(url+"/hook", "application/json", strings.NewReader(`{"status":"resolved","alerts":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	got, err = rc.Received(context.Background())
	if err != nil || len(got) != 2 || got[1].Authorized || got[1].Status != "resolved" {
		t.Errorf("after an unauthorized post: %+v %v", got, err)
	}
	b, err := os.ReadFile(record)
	if err != nil || strings.Contains(string(b), secret) {
		t.Errorf("the record holds the token (or cannot be read: %v)", err)
	}
}
