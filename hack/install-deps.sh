#!/bin/sh
# Installs what sitectl's tests and lab need on a fresh Debian bookworm machine (root).
# Idempotent: packages already present are skipped; Go modules are downloaded once.
set -eu

PKGS="docker.io iptables nftables iproute2 strongswan-swanctl charon-systemd libcharon-extra-plugins libstrongswan-standard-plugins
strongswan-pki postgresql-15 postgresql-client-15 debootstrap curl netcat-openbsd tcpdump
iperf3 prometheus ca-certificates python3-django python3-psycopg2 python3-asgiref python3-sqlparse
python3-tz tzdata dash openssh-client openssh-server chromium"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing packages:$missing; run as root (or: sudo apt-get install$missing)" >&2
		exit 1
	fi
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	# The packages' own services are not wanted: the lab starts its own daemons.
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -q --no-install-recommends $missing >/dev/null
	rm -f /usr/sbin/policy-rc.d
fi

if command -v go >/dev/null 2>&1; then
	go mod download
elif [ -x /usr/local/go/bin/go ]; then
	/usr/local/go/bin/go mod download
else
	echo "install-deps: Go is not installed (expected at /usr/local/go)" >&2
	exit 1
fi
