package stacks

import (
	"fmt"
	"maps"
	"slices"

	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// shipAppLogs points every service of an app that does not choose its own log
// driver at the Logstash on its node (gelf, as Kong does), when the site runs the elk
// stack; that Logstash adds the site and app fields (stacks/elk).
func shipAppLogs(in Input, services map[string]any) {
	if !in.Site.HasStack("elk") {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(services)) {
		svc, _ := services[name].(map[string]any)
		if svc == nil {
			continue
		}
		if _, own := svc["logging"]; own {
			continue
		}
		svc["logging"] = map[string]any{
			"driver":  "gelf",
			"options": map[string]any{"gelf-address": fmt.Sprintf("udp://127.0.0.1:%d", targets.LogstashGELFPort)},
		}
	}
}
