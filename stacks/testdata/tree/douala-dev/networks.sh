#!/bin/sh
# The site networks of douala (environment dev), created as sitectl deploy creates
# them. The stacks attach to them as external networks: run this once against the
# site's swarm manager (DOCKER_HOST) before docker stack deploy. A network that
# exists already is left as it is (sitectl plan shows whether it differs).
set -eu
net() {
	name=$1
	shift
	docker network inspect "$name" >/dev/null 2>&1 || docker network create "$@" "$name"
}
net app --driver overlay --scope swarm --opt encrypted --subnet 10.111.1.0/24 --label sitectl.managed=true --label sitectl.site=douala --label sitectl.stack=_site
net data --driver overlay --scope swarm --opt encrypted --subnet 10.111.2.0/24 --label sitectl.managed=true --label sitectl.site=douala --label sitectl.stack=_site
# edge: encryption off (allowed for edge only: it carries the public traffic Kong serves)
net edge --driver overlay --scope swarm --subnet 10.111.0.0/24 --label sitectl.managed=true --label sitectl.site=douala --label sitectl.stack=_site
