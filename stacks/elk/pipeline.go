package elk

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/sitectl/sitectl/sites"
	"github.com/sitectl/sitectl/stacks/monitoring/targets"
)

// LogstashYML is Logstash's settings: the persisted queue (a partition from the hub
// fills it, the heal drains it), the monitoring API, a dead letter queue.
func LogstashYML(s Settings) []byte {
	var b bytes.Buffer
	b.WriteString("# logstash.yml, rendered by sitectl; do not edit.\n")
	fmt.Fprintf(&b, "http.host: \"0.0.0.0\"\nhttp.port: %d\n", targets.LogstashAPIPort)
	b.WriteString("path.data: /usr/share/logstash/data\n")
	b.WriteString("# Persisted queue: events are on disk before they are acknowledged, so while the\n")
	b.WriteString("# tunnel to the hub is down they wait here (up to queue.max_bytes) instead of being lost.\n")
	b.WriteString("queue.type: persisted\n")
	b.WriteString("path.queue: /usr/share/logstash/data/queue\n")
	fmt.Fprintf(&b, "queue.max_bytes: %s\n", s.QueueMaxBytes)
	b.WriteString("queue.checkpoint.writes: 1024\n")
	b.WriteString("dead_letter_queue.enable: true\n")
	b.WriteString("pipeline.ecs_compatibility: disabled\n")
	b.WriteString("config.reload.automatic: false\n")
	b.WriteString("xpack.monitoring.enabled: false\n")
	return b.Bytes()
}

// Pipeline is the site's Logstash pipeline: GELF from the Docker engines (services
// log with the gelf driver to their node's Logstash) and JSON lines over TCP;
// JSON messages are parsed, other lines are grokked (Kong/nginx access logs,
// PostgreSQL, gunicorn/Django); every event gets site and environment; events go to
// the hub's Elasticsearch, one index per site and day.
//
// apps are the operator apps the site runs: their events get an app field (their
// stack is the app). esUser, when set, is the Elasticsearch user Logstash ships as;
// its password is ${LOGSTASH_ES_PASSWORD}, which Logstash reads from its
// environment, set from the Docker secret by the container's command: the
// pipeline (a swarm config) never holds it.
func Pipeline(site *sites.Site, esURL, indexPrefix string, apps []string, esUser string) []byte {
	q := strconv.Quote
	auth := ""
	if esUser != "" {
		auth = "\n    user => " + q(esUser) + "\n    password => \"${LOGSTASH_ES_PASSWORD}\""
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Logstash pipeline for %s (%s), rendered by sitectl; do not edit.\n", site.Name, site.Env)
	fmt.Fprintf(&b, `input {
  gelf {
    port => %d
    use_udp => true
    use_tcp => false
    type => "docker"
  }
  tcp {
    port => %d
    codec => json_lines
    type => "app"
  }
}

filter {
  # GELF carries the container's line in "message" and the task's container name
  # (<stack>_<service>.<slot|node>.<task>) in "container_name".
  if [container_name] {
    grok {
      match => { "container_name" => "^(?<service>[^.]+)\." }
      tag_on_failure => []
    }
  }
%s  if [message] =~ /^\s*\{/ {
    json {
      source => "message"
      target => "app"
      skip_on_invalid_json => true
    }
    if [app][level] { mutate { copy => { "[app][level]" => "level" } } }
    if [app][request_id] { mutate { copy => { "[app][request_id]" => "request_id" } } }
  } else {
    grok {
      match => {
        "message" => [
          # Kong / nginx access log (combined format)
          "%%{COMBINEDAPACHELOG}",
          # PostgreSQL: log_line_prefix '%%m [%%p] '
          "^%%{TIMESTAMP_ISO8601:log_time} %%{WORD:log_tz} \[%%{POSINT:pid}\] %%{WORD:level}:\s+%%{GREEDYDATA:log_message}",
          # gunicorn / Django: [2026-11-23 14:00:00 +0000] [7] [INFO] message
          "^\[(?<log_time>%%{TIMESTAMP_ISO8601}(?: %%{ISO8601_TIMEZONE})?)\] \[%%{POSINT:pid}\] \[%%{LOGLEVEL:level}\] %%{GREEDYDATA:log_message}"
        ]
      }
      tag_on_failure => ["_sitectl_unparsed"]
    }
    if [log_time] {
      date {
        match => ["log_time", "ISO8601", "yyyy-MM-dd HH:mm:ss.SSS", "yyyy-MM-dd HH:mm:ss Z"]
        tag_on_failure => ["_sitectl_bad_time"]
      }
    }
    if [timestamp] {
      date {
        match => ["timestamp", "dd/MMM/yyyy:HH:mm:ss Z"]
        tag_on_failure => ["_sitectl_bad_time"]
      }
    }
  }
  # Correlate with Kong's X-Request-ID (correlation-id plugin) when a service logs it.
  if [request_id] == "" { mutate { remove_field => ["request_id"] } }
  mutate {
    add_field => {
      "site" => %s
      "environment" => %s
    }
  }
}

output {
  elasticsearch {
    hosts => [%s]%s
    index => %s
    ilm_enabled => false
    manage_template => false
    retry_initial_interval => 2
    retry_max_interval => 60
  }
}
`, targets.LogstashGELFPort, targets.LogstashTCPPort, appFilter(apps), q(site.Name), q(site.Env), q(esURL), auth,
		q(indexPrefix+"-"+site.Name+"-%{+YYYY.MM.dd}"))
	return b.Bytes()
}
