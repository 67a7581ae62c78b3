#!/bin/sh
# base-image.sh ENGINE - makes sure the base images the Dockerfiles name
# (debian:12, debian:12-slim) exist in ENGINE's local store.  A local image
# is reused, or copied from the other engine; otherwise the registry is
# asked; when no registry answers, a Debian 12 root filesystem is made with
# debootstrap from this machine's apt mirror and imported under both names
# (about 2 minutes, once per machine).
set -eu
engine=${1:?usage: base-image.sh podman|docker}
names="docker.io/library/debian:12 docker.io/library/debian:12-slim"

have() { "$engine" image inspect "$1" >/dev/null 2>&1; }

missing=""
for n in $names; do have "$n" || missing="$missing $n"; done
[ -z "$missing" ] && exit 0

# One present under any name stands in for the others (same rootfs).
for n in $names; do
	if have "$n"; then
		for m in $missing; do "$engine" tag "$n" "$m"; done
		exit 0
	fi
done

# The other engine on this machine may hold it already.
for other in podman docker; do
	[ "$other" = "$engine" ] && continue
	command -v "$other" >/dev/null 2>&1 || continue
	"$other" image inspect docker.io/library/debian:12 >/dev/null 2>&1 || continue
	if "$other" save docker.io/library/debian:12 | "$engine" load >/dev/null 2>&1; then
		for m in $missing; do have "$m" || "$engine" tag docker.io/library/debian:12 "$m"; done
		echo "base-image.sh: debian:12 copied from $other" >&2
		exit 0
	fi
done

if "$engine" pull docker.io/library/debian:12 >/dev/null 2>&1 &&
    "$engine" pull docker.io/library/debian:12-slim >/dev/null 2>&1; then
	exit 0
fi

echo "base-image.sh: no registry answers; making debian:12 locally with debootstrap" >&2
[ "$(id -u)" = 0 ] || { echo "base-image.sh: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null 2>&1 || {
	echo "base-image.sh: debootstrap is missing (docker/deps.sh container installs it)" >&2
	exit 1
}
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)\/*$/\1/p' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\{1,\}\([^[:space:]]*\/debian\)\/*[[:space:]]\{1,\}bookworm[[:space:]].*/\1/p' \
    /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
secmirror=${mirror%/debian}/debian-security

root=$(mktemp -d /tmp/bouncerd-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
	tail -n 20 "$root.log" >&2
	rm -f "$root.log"
	exit 1
}
rm -f "$root.log"
cat >"$root/etc/apt/sources.list" <<-SOURCES
	deb $mirror bookworm main
	deb $mirror bookworm-updates main
	deb $secmirror bookworm-security main
SOURCES
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
if ! tar --numeric-owner -C "$root" -c . |
    "$engine" import --change 'CMD ["bash"]' - docker.io/library/debian:12 >"$root.log" 2>&1; then
	cat "$root.log" >&2
	rm -f "$root.log"
	exit 1
fi
rm -f "$root.log"
"$engine" tag docker.io/library/debian:12 docker.io/library/debian:12-slim
echo "base-image.sh: debian:12 and debian:12-slim imported" >&2
