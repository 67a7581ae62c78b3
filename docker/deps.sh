#!/bin/sh
# deps.sh - the one list of Debian packages bouncerd needs, used by the
# Makefile, tests/services.sh, .ci/run and docker/Dockerfile alike.
#
#   deps.sh build     compiler, pkg-config and the four -dev libraries
#   deps.sh test      build + PostgreSQL, Dovecot POP3, openssl, curl,
#                     python3, clang (fuzzing), clang-format (lint) and
#                     nodejs/npm (webhook tests)
#   deps.sh runtime   the run-time libraries only (for the slim image)
#   deps.sh container podman, podman-compose and debootstrap, for make image
#                     and the container test (tests/container/run.sh)
#   deps.sh --print MODE   print the package list and exit
#
# Missing packages are installed with apt-get when running as root on
# Debian; otherwise the exact apt-get command is printed and we exit 1.
set -eu

build_pkgs="gcc make pkg-config libcurl4-openssl-dev libpq-dev libyaml-dev libgmime-3.0-dev"
test_pkgs="$build_pkgs postgresql dovecot-pop3d openssl curl python3 clang libclang-rt-14-dev clang-format procps"
# nodejs + npm: the webhook tests verify deliveries with the Standard
# Webhooks reference library (npm standardwebhooks).  A Node.js from
# elsewhere (NodeSource's nodejs carries npm) counts: no Debian npm then.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	:
else
	test_pkgs="$test_pkgs nodejs npm"
fi
runtime_pkgs="libcurl4 libpq5 libyaml-0-2 libgmime-3.0-0 ca-certificates"
# runc: crun refuses hybrid cgroup layouts; the dnsname plugin lets compose
# services find each other by name; debootstrap makes the base image when
# no registry answers (docker/base-image.sh)
container_pkgs="podman podman-compose runc containernetworking-plugins golang-github-containernetworking-plugin-dnsname iptables uidmap slirp4netns fuse-overlayfs catatonit debootstrap"

print=0
if [ "${1:-}" = "--print" ]; then
	print=1
	shift
fi
case "${1:-}" in
build) pkgs=$build_pkgs ;;
test) pkgs=$test_pkgs ;;
runtime) pkgs=$runtime_pkgs ;;
container) pkgs=$container_pkgs ;;
*) echo "usage: deps.sh [--print] build|test|runtime|container" >&2; exit 2 ;;
esac
if [ "$print" = 1 ]; then
	echo "$pkgs"
	exit 0
fi

missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	# an empty package list (fresh image) makes install fail: update first
	apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
	# shellcheck disable=SC2086
	apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing >&2
	exit 0
fi
echo "deps.sh: missing Debian packages:$missing" >&2
echo "deps.sh: install them with:  sudo apt-get install$missing" >&2
exit 1
