package live

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/drill"
	"github.com/sitectl/sitectl/stacks/monitoring"
	"github.com/sitectl/sitectl/stacks/monitoring/alerts/amtest"
	"github.com/sitectl/sitectl/stacks/stacktest"
)

// TestAlertingWatchesTheHubsPath: a partition of douala expects TunnelDown for
// douala only (yaounde's link to douala is not seen from the hub), reads a real
// Alertmanager running the hub's configuration and a receiver in the lab's record
// format; without the monitoring stack, with Alertmanager down, or without a
// receiver, Note says why nothing is watched.
func TestAlertingWatchesTheHubsPath(t *testing.T) {
	topo := stacktest.Load(t, "dev", "values.monitoring.scrape_interval=2s", "values.monitoring.evaluation_interval=2s",
		"values.monitoring.alerts.tunnel_down_for=10s", "cloud:alerting.group_wait=1s", "cloud:alerting.group_interval=2s")
	cfg, err := monitoring.AlertmanagerConfig(topo)
	if err != nil {
		t.Fatal(err)
	}
	am := strings.TrimPrefix(amtest.Start(t, cfg), "http://")
	amtest.Post(t, "http://"+am, map[string]string{"alertname": "TunnelDown", "site": "douala", "link": "douala-cloud"})
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `[{"received_at": 1765100000.25, "authorized": true, "payload": {"status": "firing", "alerts": [`+
			`{"status": "firing", "labels": {"alertname": "TunnelDown", "site": "douala", "link": "douala-cloud"}}]}}]`)
	}))
	defer rec.Close()
	hub := topo.HubSite()
	// The hub's LAN is this machine: the receiver's address dials it, every other
	// one Alertmanager.
	toAM := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != strings.TrimPrefix(rec.URL, "http://") {
			addr = am
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	hub.Reach.Dial = toAM
	hub.Lab.AlertReceiver = rec.URL
	a := Alerting(context.Background(), topo, topo.LinksOf("douala"))
	if a.Note != "" || a.Reader == nil || len(a.Expect) != 1 || a.Expect[0] != (drill.ExpectedAlert{Name: "TunnelDown", Site: "douala"}) {
		t.Fatalf("alerting of a douala partition: %+v", a)
	}
	// 2s scrape + 2s timeout + 2x2s evaluation + 10s for + 1s group_wait + 2s; 2+2+2+2.
	if a.Detect != 21*time.Second || a.Resolve != 8*time.Second {
		t.Errorf("bounds: detect %s resolve %s, want 21s and 8s", a.Detect, a.Resolve)
	}
	held, err := a.Reader.Held(context.Background())
	if err != nil || len(held) != 1 || held[0].Name != "TunnelDown" || held[0].Site != "douala" || held[0].State != "active" {
		t.Errorf("held: %+v %v", held, err)
	}
	got, err := a.Reader.Received(context.Background())
	if err != nil || len(got) != 1 || got[0].Status != "firing" || got[0].Labels["link"] != "douala-cloud" || got[0].At.UnixMilli() != 1765100000250 {
		t.Errorf("received: %+v %v", got, err)
	}

	if a := Alerting(context.Background(), topo, topo.LinksOf("cloud")); len(a.Expect) != 2 {
		t.Errorf("a partition of the hub expects TunnelDown for both spokes: %+v", a.Expect)
	}
	hub.Lab.AlertReceiver = ""
	if a := Alerting(context.Background(), topo, topo.LinksOf("douala")); a.Reader != nil || !strings.Contains(a.Note, "has no receiver the drill can read") {
		t.Errorf("without a receiver: %+v", a)
	}
	hub.Reach.Dial = func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("connection refused") }
	if a := Alerting(context.Background(), topo, topo.LinksOf("douala")); a.Reader != nil ||
		!strings.Contains(a.Note, "the monitoring stack is not deployed at cloud") || !strings.Contains(a.Note, "sitectl deploy --site cloud") {
		t.Errorf("with Alertmanager down: %+v", a)
	}
	hub.Stacks = []string{"postgres"}
	if a := Alerting(context.Background(), topo, topo.LinksOf("douala")); a.Reader != nil || !strings.Contains(a.Note, "does not list the monitoring stack") {
		t.Errorf("without the monitoring stack: %+v", a)
	}
}
