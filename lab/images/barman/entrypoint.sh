#!/bin/sh
# sitectl's Barman container (stacks/backup): writes Barman's password file from the
# Docker secrets, starts the exporter, then every minute runs `barman cron`
# (restarts pg_receivewal, files the streamed WAL, applies retention) and takes a
# base backup of a site whose newest is older than its last_backup_maximum_age
# (`barman check` says FAILED).
# BARMAN_TARGETS lists "site=host:port:user" words; the password of site is
# /run/secrets/barman-password-<site>.
set -u
# The password file is written below: nothing made here is for other users.
umask 077
mkdir -p /var/lib/barman /var/log/barman
chown barman:barman /var/lib/barman /var/log/barman
: >/var/lib/barman/.pgpass
for t in ${BARMAN_TARGETS:-}; do
	site=${t%%=*}
	rest=${t#*=}
	host=${rest%%:*}
	rest=${rest#*:}
	port=${rest%%:*}
	user=${rest#*:}
	printf '%s:%s:*:%s:%s\n' "$host" "$port" "$user" "$(cat "/run/secrets/barman-password-$site")" >>/var/lib/barman/.pgpass
done
chown barman:barman /var/lib/barman/.pgpass
chmod 600 /var/lib/barman/.pgpass
export PGPASSFILE=/var/lib/barman/.pgpass
[ "${1:-}" = "--once" ] && exit 0
# Backup age, WAL streaming and lag per site as Prometheus metrics on
# $BARMAN_EXPORTER_PORT (barman-exporter: backup/exporter/barman_exporter.py).
barman-exporter &
while :; do
	barman -q cron
	for t in ${BARMAN_TARGETS:-}; do
		site=${t%%=*}
		if barman check "$site" 2>/dev/null | grep -q 'backup maximum age: FAILED'; then
			barman -q backup --wait "$site" || true
		fi
	done
	sleep 60
done
