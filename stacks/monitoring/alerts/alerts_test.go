package alerts_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts/amtest"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// message is the part of Alertmanager's webhook payload the test reads.
type message struct {
	Status string            `json:"status"`
	Group  map[string]string `json:"groupLabels"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// webhook records what Alertmanager posts to it.
type webhook struct {
	mu   sync.Mutex
	msgs []message
	auth []string
}

func (w *webhook) ServeHTTP(_ http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	var m message
	if err := json.Unmarshal(b, &m); err == nil {
		w.msgs = append(w.msgs, m)
	}
	w.auth = append(w.auth, r.Header.Get("Authorization"))
}

// TestAlertsFromRealAlertmanager: a real Alertmanager runs the hub's rendered
// alertmanager.yml (a webhook receiver with a bearer token read from a file);
// alerts posted to it are read back through sitectl's client, a site's
// TunnelDown inhibits the replication alerts about that site (and only those),
// and the webhook gets one notification per site with the token.
func TestAlertsFromRealAlertmanager(t *testing.T) {
	topo := stacktest.Load(t, "dev")
	hook := &webhook{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	topo.HubSite().Alerting = sites.Alerting{
		Receiver:      "ops",
		GroupWait:     sites.Duration(time.Second),
		GroupInterval: sites.Duration(time.Second),
		Receivers:     []sites.AlertReceiver{{Name: "ops", Webhooks: []sites.AlertWebhook{{URL: srv.URL + "/hook", Token: sites.SecretRef{Env: "SITECTL_TEST_HOOK_TOKEN"}}}}},
	}
	cfg, err := monitoring.AlertmanagerConfig(topo)
	if err != nil {
		t.Fatal(err)
	}
	// The Docker secret the stack mounts at /run/secrets/<name>, here a file.
	secrets := monitoring.AlertSecrets(topo.HubSite().Alerting)
	if len(secrets) != 1 {
		t.Fatalf("secrets %+v, want the webhook token", secrets)
	}
	tokenFile := filepath.Join(t.TempDir(), secrets[0].Name)
	if err := os.WriteFile(tokenFile, []byte("s3cret-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "/run/secrets/"+secrets[0].Name, tokenFile, 1))
	if strings.Contains(string(cfg), "s3cret") {
		t.Fatal("the token is in the rendered file")
	}
	url := amtest.Start(t, cfg)

	amtest.Post(t, url,
		map[string]string{"alertname": monitoring.AlertTunnelDown, "site": "douala", "severity": "critical", "link": "douala-cloud"},
		map[string]string{"alertname": monitoring.AlertReplicationLag, "site": "cloud", "slot_name": "sitectl_cloud_to_douala", "severity": "warning"},
		map[string]string{"alertname": monitoring.AlertSubscriptionSilent, "site": "cloud", "subname": "sitectl_douala_to_cloud", "severity": "warning"},
		map[string]string{"alertname": monitoring.AlertReplicationLag, "site": "cloud", "slot_name": "sitectl_cloud_to_yaounde", "severity": "warning"},
	)
	ctx := context.Background()
	c := alerts.Client{URL: url}
	var got []alerts.Alert
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err = c.Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		suppressed := 0
		for _, a := range got {
			if a.State == "suppressed" {
				suppressed++
			}
		}
		if len(got) == 4 && suppressed == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	state := map[string]string{}
	for _, a := range got {
		state[a.Site+"/"+a.Name+"/"+a.Labels["slot_name"]+a.Labels["subname"]] = a.State
		if a.Summary != a.Name+" at "+a.Site {
			t.Errorf("%s: summary %q", a.Name, a.Summary)
		}
	}
	want := map[string]string{
		"douala/TunnelDown/": "active",
		"cloud/ReplicationLagHigh/sitectl_cloud_to_douala":  "suppressed",
		"cloud/SubscriptionSilent/sitectl_douala_to_cloud":  "suppressed",
		"cloud/ReplicationLagHigh/sitectl_cloud_to_yaounde": "active",
	}
	if fmt.Sprint(state) != fmt.Sprint(want) {
		t.Errorf("alerts read back:\n got %v\nwant %v", state, want)
	}
	if len(got) > 0 && (got[0].Site != "cloud" || got[len(got)-1].Site != "douala") {
		t.Errorf("not sorted by site: %+v", got)
	}

	// One notification per site (group_by site), each with the bearer token.
	deadline = time.Now().Add(15 * time.Second)
	for {
		hook.mu.Lock()
		groups := map[string]int{}
		for _, m := range hook.msgs {
			groups[m.Group["site"]] += len(m.Alerts)
		}
		auth := append([]string(nil), hook.auth...)
		hook.mu.Unlock()
		if groups["douala"] == 1 && groups["cloud"] == 1 {
			for _, a := range auth {
				if a != "Bearer s3cret-token" {
					t.Errorf("webhook got Authorization %q, want the token from the file", a)
				}
			}
			if len(groups) != 2 {
				t.Errorf("notifications grouped as %v, want one group per site", groups)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %v (alerts per site group), want douala:1 (TunnelDown) and cloud:1 (the yaounde slot; the douala ones inhibited)", groups)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAlertsUnreachable: a closed port and a server that is not Alertmanager are
// both an UnreachableError naming the URL.
func TestAlertsUnreachable(t *testing.T) {
	url := fmt.Sprintf("http://127.0.0.1:%d", amtest.FreePort(t))
	_, err := alerts.Client{URL: url, HTTP: &http.Client{Timeout: time.Second}}.Alerts(context.Background())
	var ue *alerts.UnreachableError
	if !errors.As(err, &ue) || ue.URL != url || !strings.Contains(err.Error(), url) {
		t.Fatalf("closed port: got %v, want an UnreachableError naming %s", err, url)
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, err := (alerts.Client{URL: srv.URL}).Alerts(context.Background()); !errors.As(err, &ue) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("not Alertmanager: got %v", err)
	}
}
