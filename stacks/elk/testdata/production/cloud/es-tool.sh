#!/bin/sh
# sitectl-es, rendered by sitectl; do not edit. health | setup
set -eu
es=http://elasticsearch:9200
# esc FILE: the secret, " and \ escaped (JSON strings and curl's config alike).
esc() { sed 's/["\\]/\\&/g' "$1"; }
# es_curl PATH [curl args...]: as the elastic user, its password on stdin.
es_curl() {
	p=$1
	shift
	printf 'user = "elastic:%s"\n' "$(esc /run/secrets/elastic-password)" | curl -fsS -K - "$@" "$es$p"
}
# call METHOD PATH BODY
call() {
	umask 077
	printf '%s' "$3" >"$tmp/body"
	es_curl "$2" -X "$1" -H 'Content-Type: application/json' --data-binary @"$tmp/body" >/dev/null
	rm -f "$tmp/body"
}
case ${1:-} in
health)
	es=http://localhost:9200
	es_curl '/_cluster/health?wait_for_status=yellow&timeout=5s' >/dev/null
	;;
setup)
	tmp=$(mktemp -d)
	n=0
	until out=$(es_curl /_security/_authenticate 2>&1 >/dev/null); do
		n=$((n + 1))
		if [ $((n % 12)) -eq 0 ]; then echo "sitectl-es: Elasticsearch at $es does not accept the elastic user yet: $out" >&2; fi
		sleep 5
	done
	call POST /_security/user/kibana_system/_password "{\"password\":\"$(esc /run/secrets/kibana-es-password)\"}"
	call PUT /_security/role/sitectl_logstash_writer '{"cluster":["monitor"],"indices":[{"names":["sitectl-logs-*"],"privileges":["create_index","write"]}]}'
	call PUT /_security/user/sitectl_logstash "{\"password\":\"$(esc /run/secrets/logstash-es-password)\",\"roles\":[\"sitectl_logstash_writer\"]}"
	echo "sitectl-es: kibana_system and sitectl_logstash are set"
	exec sleep infinity
	;;
*)
	echo "usage: sitectl-es health|setup" >&2
	exit 2
	;;
esac
