package elk

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/stacks"
)

// appNames are the operator apps in.Site runs.
func appNames(in stacks.Input) []string {
	var out []string
	for _, a := range in.Topo.AppsAt(in.Site.Name) {
		out = append(out, a.Name)
	}
	return out
}

// appFilter is the pipeline's part that gives an app's events the app field: an
// app's services are <app>_<service> (its stack is the app), and app names hold no
// "_". A regex, not `in [...]`: Logstash reads a one-element list as a substring test.
func appFilter(apps []string) string {
	if len(apps) == 0 {
		return ""
	}
	return fmt.Sprintf(`  # Operator apps at this site (apps/): the app's name is its services' stack.
  if [service] =~ /^(%s)_/ {
    grok {
      match => { "service" => "^(?<app>[^_]+)_" }
      tag_on_failure => []
    }
  }
`, strings.Join(apps, "|"))
}
