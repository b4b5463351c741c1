package elk

import (
	"fmt"
	"strings"

	"github.com/sitectl/sitectl/sites"
)

// Elasticsearch security (values.elk.security, on by default; the lab's stand-in
// runs with it off, which `sitectl audit` lists as a lab exception): the built-in
// elastic user's password, Kibana's (kibana_system) and Logstash's own user, each a
// Docker secret from the site's secret references; never in a service's
// environment, labels or a config.
const (
	// ElasticPasswordSecret is the elastic superuser's password: Elasticsearch
	// bootstraps it (ELASTIC_PASSWORD_FILE); only the es-setup service uses it.
	ElasticPasswordSecret = "elastic-password"
	// KibanaPasswordSecret is the password es-setup gives kibana_system, the user
	// Kibana connects as.
	KibanaPasswordSecret = "kibana-es-password"
	// LogstashPasswordSecret is the password of LogstashUser, the user every
	// site's Logstash ships as (index writes under the index prefix only).
	LogstashPasswordSecret = "logstash-es-password"
	// LogstashUser and LogstashRole are made by es-setup.
	LogstashUser = "sitectl_logstash"
	LogstashRole = "sitectl_logstash_writer"
	// ToolPath is where the elk services find sitectl's small helper script
	// (es-tool.sh: setup, health).
	ToolPath = "/usr/local/bin/sitectl-es"
)

// securitySecrets are the secrets a site's elk stack needs with security on: at
// the hub all three, elsewhere Logstash's. A missing one is refused by name.
func securitySecrets(site *sites.Site) ([]string, error) {
	names := []string{LogstashPasswordSecret}
	if site.IsHub() {
		names = []string{ElasticPasswordSecret, KibanaPasswordSecret, LogstashPasswordSecret}
	}
	var missing []string
	for _, n := range names {
		if ref, ok := site.Secrets[n]; !ok || ref.IsZero() {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("site %s: values.elk.security is on but secrets %s are not set: add secrets.<name>: {env: VAR} or {file: path} (generate them, e.g. openssl rand -hex 24), or turn security off (values.elk.security: false, reported high by sitectl audit outside the lab)",
			site.Name, strings.Join(missing, ", "))
	}
	return names, nil
}

// ESTool is es-tool.sh, mounted at ToolPath in Elasticsearch and es-setup:
// `sitectl-es health` is Elasticsearch's health check as the elastic user, on
// localhost:localPort (swarm gives the service's name an address only once the
// task is healthy, so the check cannot go through it);
// `sitectl-es setup` waits for Elasticsearch, sets kibana_system's password, makes
// Logstash's role (create and write the indices under indexPrefix) and user, then
// stays up (a swarm service). Every call is idempotent. Passwords travel in curl's
// config on stdin and in a 0600 file, never on a command line.
func ESTool(esURL string, localPort int, indexPrefix string) []byte {
	return []byte(fmt.Sprintf(`#!/bin/sh
# sitectl-es, rendered by sitectl; do not edit. health | setup
set -eu
es=%s
# esc FILE: the secret, " and \ escaped (JSON strings and curl's config alike).
esc() { sed 's/["\\]/\\&/g' "$1"; }
# es_curl PATH [curl args...]: as the elastic user, its password on stdin.
es_curl() {
	p=$1
	shift
	printf 'user = "elastic:%%s"\n' "$(esc /run/secrets/%s)" | curl -fsS -K - "$@" "$es$p"
}
# call METHOD PATH BODY
call() {
	umask 077
	printf '%%s' "$3" >"$tmp/body"
	es_curl "$2" -X "$1" -H 'Content-Type: application/json' --data-binary @"$tmp/body" >/dev/null
	rm -f "$tmp/body"
}
case ${1:-} in
health)
	es=http://localhost:%d
	es_curl '/_cluster/health?wait_for_status=yellow&timeout=5s' >/dev/null
	;;
setup)
	tmp=$(mktemp -d)
	n=0
	until out=$(es_curl /_security/_authenticate 2>&1 >/dev/null); do
		n=$((n + 1))
		if [ $((n %% 12)) -eq 0 ]; then echo "sitectl-es: Elasticsearch at $es does not accept the elastic user yet: $out" >&2; fi
		sleep 5
	done
	call POST /_security/user/kibana_system/_password "{\"password\":\"$(esc /run/secrets/%s)\"}"
	call PUT /_security/role/%s '{"cluster":["monitor"],"indices":[{"names":["%s-*"],"privileges":["create_index","write"]}]}'
	call PUT /_security/user/%s "{\"password\":\"$(esc /run/secrets/%s)\",\"roles\":[\"%s\"]}"
	echo "sitectl-es: kibana_system and %s are set"
	exec sleep infinity
	;;
*)
	echo "usage: sitectl-es health|setup" >&2
	exit 2
	;;
esac
`, esURL, ElasticPasswordSecret, localPort, KibanaPasswordSecret, LogstashRole, indexPrefix, LogstashUser, LogstashPasswordSecret, LogstashRole, LogstashUser))
}
