package elk

import (
	"fmt"
	"regexp"
	"strings"
)

// DefaultIndexPrefix starts the daily index names (<prefix>-<site>-YYYY.MM.dd). It is
// not "logs": Elasticsearch has built-in index templates (priority 100) for
// logs-*-*, metrics-*-* and synthetics-*-* that make a matching name a data stream,
// which refuses Logstash's default `index` action ("Index templates", Elasticsearch
// reference, "Avoid index pattern collisions").
const DefaultIndexPrefix = "sitectl-logs"

// builtinStreams are the index patterns of Elasticsearch's built-in data-stream
// templates, by their first part.
var builtinStreams = []string{"logs", "metrics", "synthetics"}

// indexPrefixRE is what an index prefix may hold: Elasticsearch index names are
// lowercase and may not contain \ / * ? " < > | , # : or a space, nor start with
// -, _ or +. sitectl keeps to letters, digits, '-' and '.' after a letter or digit.
var indexPrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,99}$`)

// checkIndexPrefix refuses a prefix Elasticsearch would refuse in an index name, or
// one that would make sitectl's indices match a built-in data-stream template.
func checkIndexPrefix(p string) error {
	if !indexPrefixRE.MatchString(p) {
		return fmt.Errorf("want lowercase letters, digits, '-' or '.', starting with a letter or digit (Elasticsearch index names), e.g. %s", DefaultIndexPrefix)
	}
	for _, b := range builtinStreams {
		if p == b || strings.HasPrefix(p, b+"-") {
			return fmt.Errorf("the indices <prefix>-<site>-<date> would match Elasticsearch's built-in data-stream template %s-*-*, whose data streams refuse Logstash's index action: pick another prefix, e.g. %s", b, DefaultIndexPrefix)
		}
	}
	return nil
}
