#!/bin/sh
# images.sh VERSION - `make image`: builds the bouncerd image and the demo
# stack's Dovecot image with the engine that is present (docker/engine.sh),
# on a Debian base made locally when no registry answers
# (docker/base-image.sh).  Where postgres:15 can be neither found nor
# pulled, a stand-in made from Debian's postgresql-15 is built under that
# name (docker/postgres/), so the compose stack runs offline too.
#
# Images: bouncerd:VERSION (also :latest), bouncerd-demo-dovecot:latest,
# and postgres:15 when it had to be made.  Prints each build's duration
# and the bouncerd image's size.
set -eu
VERSION=${1:?usage: images.sh VERSION}
SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"
. "$SRC/docker/engine.sh"
engine_pick || { echo "images.sh: no container engine can run here" >&2; exit 1; }
REVISION=$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)

LOGDIR=${TMPDIR:-/tmp}
build() {	# NAME DOCKERFILE BUILD-OPTIONS...
	name=$1 df=$2
	shift 2
	log=$LOGDIR/bouncerd-image.$(echo "$name" | tr -c 'a-zA-Z0-9\n' _).log
	t0=$(date +%s)
	if [ "$ENGINE" = podman ]; then
		# --format docker keeps HEALTHCHECK, which OCI images cannot hold
		set -- podman build --pull=never --format docker -f "$df" "$@" .
	else
		# the host's network: apt in the build needs a way out, which a
		# daemon started with --iptables=false gives bridge containers not
		set -- docker build --network host --force-rm -f "$df" "$@" .
	fi
	if ! "$@" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		echo "images.sh: building $name failed (log: $log)" >&2
		exit 1
	fi
	echo "images.sh: $name built in $(($(date +%s) - t0)) s ($ENGINE; log: $log)"
}

build bouncerd docker/Dockerfile -t "bouncerd:$VERSION" -t bouncerd:latest \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION"
build bouncerd-demo-dovecot docker/dovecot/Dockerfile -t bouncerd-demo-dovecot:latest
if ! "$ENGINE" image inspect docker.io/library/postgres:15 >/dev/null 2>&1 &&
    ! "$ENGINE" pull docker.io/library/postgres:15 >/dev/null 2>&1; then
	build "postgres:15 (stand-in from Debian's postgresql-15)" docker/postgres/Dockerfile \
	    -t docker.io/library/postgres:15
fi
size=$("$ENGINE" image inspect -f '{{.Size}}' "bouncerd:$VERSION")
echo "images.sh: bouncerd:$VERSION is $((size / 1000000)) MB"
