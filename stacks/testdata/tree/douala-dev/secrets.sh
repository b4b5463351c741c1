#!/bin/sh
# Fills each stack's secrets/ folder of douala (environment dev) from the site's
# secret references, read as sitectl deploy reads them (a file's trailing line
# breaks dropped). This script holds references only, never a value. Run it where
# those variables and files are, just before docker stack deploy; remove the
# secrets/ folders afterwards (rm -r -- */secrets). .gitignore keeps them out of git.
set -eu
cd "$(dirname "$0")"
umask 077
cr=$(printf '\r')
nl='
'
fail() {
	echo "secrets.sh: $*" >&2
	exit 1
}
# from_env VAR DEST SECRET
from_env() {
	eval "isset=\${$1+x}"
	[ -n "$isset" ] || fail "secret $3: environment variable $1 is not set (export it, then run this again)"
	mkdir -p "$(dirname "$2")"
	eval "printf '%s' \"\$$1\"" >"$2"
}
# from_file PATH DEST SECRET
from_file() {
	v=$(cat -- "$1" && printf x) || fail "secret $3: cannot read $1"
	v=${v%x}
	while :; do
		case $v in
		*"$nl" | *"$cr") v=${v%?} ;;
		*) break ;;
		esac
	done
	mkdir -p "$(dirname "$2")"
	printf '%s' "$v" >"$2"
}
# pass_line PREFIX VALUE DEST: one passfile line, the value's backslashes and colons escaped.
pass_line() {
	printf '%s%s\n' "$1" "$(printf '%s' "$2" | sed 's/[\\:]/\\&/g')" >>"$3"
}
# pass_env VAR PREFIX DEST SECRET
pass_env() {
	eval "isset=\${$1+x}"
	[ -n "$isset" ] || fail "secret $4: environment variable $1 is not set (export it, then run this again)"
	eval "pass_line \"\$2\" \"\$$1\" \"\$3\""
}
# pass_file PATH PREFIX DEST SECRET
pass_file() {
	v=$(cat -- "$1" && printf x) || fail "secret $4: cannot read $1"
	v=${v%x}
	while :; do
		case $v in
		*"$nl" | *"$cr") v=${v%?} ;;
		*) break ;;
		esac
	done
	pass_line "$2" "$v" "$3"
}
from_env SITECTL_PG_PASSWORD postgres/secrets/postgres-password postgres-password
mkdir -p postgres/secrets
: >postgres/secrets/postgres-pgpass
pass_env SITECTL_PG_PASSWORD 10.30.0.11:5432:app:sitectl: postgres/secrets/postgres-pgpass postgres-pgpass
from_env SITECTL_DJANGO_SECRET_KEY django-api/secrets/django-secret-key django-secret-key
from_env SITECTL_PG_APP_PASSWORD django-api/secrets/postgres-app-password postgres-app-password
from_env SITECTL_KONG_TLS_CERT kong/secrets/kong-tls-cert kong-tls-cert
from_env SITECTL_KONG_TLS_KEY kong/secrets/kong-tls-key kong-tls-key
from_env SITECTL_LOGSTASH_ES_PASSWORD elk/secrets/logstash-es-password logstash-es-password
from_env SITECTL_PG_PASSWORD monitoring/secrets/postgres-password postgres-password
from_env SITECTL_MONGO_KEYFILE mongo/secrets/mongo-keyfile mongo-keyfile
from_env SITECTL_MONGO_PASSWORD mongo/secrets/mongo-password mongo-password
