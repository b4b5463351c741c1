package main

import (
	"strings"
	"testing"

	"github.com/sitectl/sitectl/drill"
)

// The drill's text report lists each alert with its times after the cut and the
// heal, or says why alerts were not watched.
func TestPrintDrillAlerts(t *testing.T) {
	var b strings.Builder
	printDrillAlerts(&b, &drill.AlertReport{Receiver: "the lab's receiver http://10.30.0.11:19093", Alerts: []drill.AlertTime{
		{Alert: "TunnelDown", Site: "douala", Key: "link=douala-cloud", Via: "receiver", FiredAfterCut: drill.Secs(17300e6), ResolvedAfterHeal: drill.Secs(6100e6)},
		{Alert: "SubscriptionSilent", Site: "cloud", Key: "subname=sitectl_douala_to_cloud", Via: "alertmanager", InhibitedBy: true, FiredAfterCut: drill.Secs(21e9)},
		{Alert: "ReplicationLagHigh", Site: "cloud", Key: "slot_name=sitectl_cloud_to_douala", Via: "receiver", InhibitedBy: true,
			HeldAfterCut: drill.Secs(22e9), FiredAfterCut: drill.Secs(31500e6), ResolvedAfterHeal: drill.Secs(5400e6)},
	}})
	want := `  alerts at the lab's receiver http://10.30.0.11:19093:
    TunnelDown{site=douala, link=douala-cloud} (receiver): fired cut+17.3s, resolved heal+6.1s
    SubscriptionSilent{site=cloud, subname=sitectl_douala_to_cloud} (alertmanager, inhibited): fired cut+21.0s, not resolved
    ReplicationLagHigh{site=cloud, slot_name=sitectl_cloud_to_douala} (receiver, inhibited in Alertmanager from cut+22.0s): fired cut+31.5s, resolved heal+5.4s
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	printDrillAlerts(&b, &drill.AlertReport{Note: "the monitoring stack is not deployed at cloud"})
	if b.String() != "  alerts: not watched: the monitoring stack is not deployed at cloud\n" {
		t.Errorf("got %q", b.String())
	}
}
