#!/bin/sh
# sitectl: the hub's scheduled mongodump (rendered by stacks/backup, values.backup.mongodump).
# Every MONGODUMP_EVERY_SECONDS: one gzipped archive of MONGODUMP_URI's member with its
# oplog (--oplog: a consistent point in time), written as .part and renamed when
# complete; the newest MONGODUMP_KEEP archives are kept. The password is read from the
# Docker secret into a 0600 file mongodump reads (--config): never in argv or the
# environment.
set -u
umask 077
cfg=/tmp/mongodump-config.yaml
while :; do
	printf "password: '%s'\n" "$(sed "s/'/''/g" /run/secrets/mongodump-password)" > "$cfg"
	out="/dump/$(date -u +%Y%m%dT%H%M%SZ).archive.gz"
	if mongodump --config "$cfg" --uri "$MONGODUMP_URI" --username "$MONGODUMP_USER" --oplog --gzip --archive="$out.part"; then
		mv "$out.part" "$out"
		echo "mongodump: $out written"
		ls -1 /dump/*.archive.gz | sort -r | tail -n +"$((MONGODUMP_KEEP + 1))" | xargs -r rm -f
	else
		rm -f "$out.part"
		echo "mongodump: failed; next try in ${MONGODUMP_EVERY_SECONDS}s" >&2
	fi
	rm -f "$cfg"
	sleep "$MONGODUMP_EVERY_SECONDS"
done
