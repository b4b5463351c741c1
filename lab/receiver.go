package lab

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/sitectl/sitectl/internal/netns"
	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// The lab's alert receiver: a webhook endpoint lab up runs in the namespace of the
// hub's monitor node (where Alertmanager runs), which the lab environment names as
// the hub's only alert receiver. It records every notification Alertmanager posts
// and serves them back to drills and tests.
const (
	// ReceiverPort is the port the receiver listens on, on the node's LAN address.
	ReceiverPort = 19093
	// ReceiverName is the receiver's name in the hub's alerting section.
	ReceiverName = "lab"
	// ReceiverTokenSecret is the lab secret Alertmanager sends as its bearer token
	// (through a Docker secret); the receiver marks each post that carried it.
	ReceiverTokenSecret = "alert-webhook-token"
	receiverProcess     = "alert receiver"
)

// receiverScript is the receiver, run by Debian's python3 (standard library only).
// POST /hook appends {received_at, path, authorized, payload} as one JSON line to
// the record file; GET /received returns the record as a JSON array. The token is
// compared, never written.
const receiverScript = `# Written by sitectl lab up: the lab's alert receiver (webhook).
import json, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

addr, port, record, token_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(token_file) as f:
    want = "Bearer " + f.read().strip()
lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body=b"", kind="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        at = time.time()
        try:
            payload = json.loads(body)
        except ValueError:
            return self.reply(400, b"not JSON\n")
        line = json.dumps({"received_at": at, "path": self.path,
                           "authorized": self.headers.get("Authorization") == want, "payload": payload})
        with lock:
            with open(record, "a") as f:
                f.write(line + "\n")
        self.reply(200, b"ok\n")

    def do_GET(self):
        if self.path != "/received":
            return self.reply(404, b"GET /received\n")
        with lock:
            try:
                with open(record) as f:
                    lines = [l.strip() for l in f if l.strip()]
            except FileNotFoundError:
                lines = []
        self.reply(200, ("[" + ",".join(lines) + "]\n").encode(), "application/json")

    def log_message(self, *args):
        pass

ThreadingHTTPServer((addr, port), Handler).serve_forever()
`

// ReceiverNode is the hub node the receiver runs on: the node Alertmanager is
// pinned to (stacks/monitoring's monitor node).
func (l *Layout) ReceiverNode(hub string) (*SiteLayout, *NodeLayout) {
	sl := l.Site(hub)
	if sl == nil || len(sl.Nodes) == 0 {
		return nil, nil
	}
	s := &sites.Site{Name: hub}
	for _, n := range sl.Nodes {
		s.Nodes = append(s.Nodes, sites.Node{Name: n.Name, Role: n.Role, Address: prefixAddr(n.Address), Labels: n.Labels})
	}
	pin := targets.Pin(s, "monitor", "")
	for i := range sl.Nodes {
		if sl.Nodes[i].Name == pin.Name {
			return sl, &sl.Nodes[i]
		}
	}
	return sl, &sl.Nodes[0]
}

// ReceiverURL is the receiver's base URL when the hub is in the layout ("" if not):
// Alertmanager posts to <url>/hook, drills read <url>/received.
func (l *Layout) ReceiverURL(hub string) string {
	_, n := l.ReceiverNode(hub)
	if n == nil {
		return ""
	}
	return "http://" + netip.AddrPortFrom(netip.MustParseAddr(prefixAddr(n.Address)), ReceiverPort).String()
}

// receiverAlerting is the hub's alerting section in the lab: every alert to the
// receiver, with the lab's bearer token, grouped and flushed quickly (docs/drills.md).
func (l *Layout) receiverAlerting(hub string) map[string]any {
	return map[string]any{
		"receiver":        ReceiverName,
		"group_wait":      "1s",
		"group_interval":  "2s",
		"repeat_interval": "1h",
		"receivers": []any{map[string]any{
			"name": ReceiverName,
			"webhooks": []any{map[string]any{
				"url":   l.ReceiverURL(hub) + "/hook",
				"token": map[string]any{"file": filepath.Join(l.secretsDir(), ReceiverTokenSecret)},
			}},
		}},
	}
}

// startReceiver starts the alert receiver in the hub's monitor node unless a
// recorded one still answers; its record file is kept across restarts.
func (u *upper) startReceiver(ctx context.Context, hub string) error {
	sl, n := u.layout.ReceiverNode(hub)
	if n == nil {
		return nil // the lab has no hub: nothing alerts
	}
	url := u.layout.ReceiverURL(hub)
	ping := func(ctx context.Context) error { return pingReceiver(ctx, sl.GatewayNS, url) }
	if p := u.state.process(receiverProcess); p != nil && p.Alive() {
		if ping(ctx) == nil {
			return nil
		}
	}
	u.changed = true
	dir := filepath.Join(u.dir(), "receiver")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	script := filepath.Join(dir, "receiver.py")
	if err := os.WriteFile(script, []byte(receiverScript), 0o600); err != nil {
		return err
	}
	py, err := exec.LookPath("python3")
	if _, serr := os.Stat("/usr/bin/python3"); serr == nil {
		py, err = "/usr/bin/python3", nil // Debian's, not a user's shim
	}
	if err != nil {
		return fmt.Errorf("the lab's alert receiver needs python3 (hack/install-deps.sh installs it): %w", err)
	}
	p, err := u.startDaemon(receiverProcess, n.NS, filepath.Join(dir, "receiver.log"), nil,
		py, script, prefixAddr(n.Address), fmt.Sprint(ReceiverPort), filepath.Join(dir, "received.jsonl"),
		filepath.Join(u.layout.secretsDir(), ReceiverTokenSecret))
	if err != nil {
		return err
	}
	if err := u.waitFor(ctx, 15*time.Second, p, ping); err != nil {
		return fmt.Errorf("alert receiver at %s: %w", url, err)
	}
	return nil
}

// pingReceiver reads the receiver's record from the gateway namespace (the way
// drills reach it).
func pingReceiver(ctx context.Context, gatewayNS, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/received", nil)
	if err != nil {
		return err
	}
	resp, err := netns.HTTPClient(gatewayNS, 2*time.Second).Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/received: %s", url, resp.Status)
	}
	return nil
}
