#!/usr/bin/env bash
# test_docker.sh - the static half of the image checks (the images are
# built and run by tests/container/run.sh): compose.yml and the Dockerfiles refer to
# files that exist, ports / user / health check / stop signal agree with
# each other and with the bouncerd config the stack mounts, and the image's
# build steps (the lines between BUILD-STEPS markers) succeed when run
# as they are, in a copy of the tree.
set -uo pipefail
SRC=${BOUNCER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${BOUNCER_BUILD:-$SRC/build}
Y=$B/tests/helpers/yamlflat
cd "$SRC/docker" || exit 1

ok() { echo "PASS $1"; }
bad() { echo "FAIL $1: $2"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name" "$*"; fi; }

flat=$("$Y" compose.yml) || { bad compose-parses "yamlflat failed"; exit 1; }
ok compose-parses
get() { printf '%s\n' "$flat" | sed -n "s|^$1=||p"; }

# every build context and Dockerfile exists
for svc in $(printf '%s\n' "$flat" | sed -n 's/^services\.\([^.]*\)\.build\.context=.*/\1/p'); do
	ctx=$(get "services\.$svc\.build\.context")
	df=$(get "services\.$svc\.build\.dockerfile")
	check "compose-$svc-context" test -d "$ctx"
	check "compose-$svc-dockerfile" test -f "$ctx/$df"
	# every COPY source of that Dockerfile exists in the context
	while read -r src; do
		check "dockerfile-$svc-copy-$src" test -e "$ctx/$src"
	done < <(grep -E '^COPY ' "$ctx/$df" | grep -v -- '--from=' | awk '{for (i=2;i<NF;i++) print $i}')
done
# every secret file and every bind-mounted path exists
while IFS== read -r key file; do
	check "compose-secret-${key#secrets.}" test -f "$file"
done < <(printf '%s\n' "$flat" | grep -E '^secrets\.[^.]*\.file=' | sed 's/\.file=/=/')
while IFS= read -r vol; do
	src=${vol%%:*}
	case $src in
	./* | ../* | /*) check "compose-bind-$src" test -e "$src" ;;
	*) check "compose-volume-$src-declared" grep -qE "^  $src:" compose.yml ;;
	esac
done < <(printf '%s\n' "$flat" | sed -n 's/^services\.[^.]*\.volumes\[[0-9]*\]=//p')

# the bouncerd image: non-root user, health check on /healthz, SIGTERM
final=$(awk '/^FROM /{s=""} {s=s $0 "\n"} END{printf "%s", s}' Dockerfile)
user=$(printf '%s' "$final" | sed -n 's/^USER \([^: ]*\).*/\1/p' | tail -n 1)
check dockerfile-user-set test -n "$user"
check dockerfile-user-not-root test "$user" != root -a "$user" != 0
check dockerfile-healthcheck grep -q 'HEALTHCHECK.*' Dockerfile
check dockerfile-stopsignal grep -qx 'STOPSIGNAL SIGTERM' Dockerfile
hc_url=$(grep -A1 '^HEALTHCHECK' Dockerfile | grep -o 'http://[^"]*')
check dockerfile-healthcheck-path test "${hc_url##*/}" = healthz
hc_port=$(echo "$hc_url" | sed 's|http://[^:]*:\([0-9]*\)/.*|\1|')
check dockerfile-expose-matches-healthcheck grep -qx "EXPOSE $hc_port" Dockerfile
# compose agrees: health check URL, published port, config's http.listen
check compose-healthcheck-url test "$(get 'services\.bouncerd\.healthcheck\.test\[5\]')" = "$hc_url"
check compose-port test "$(get 'services\.bouncerd\.ports\[0\]' | awk -F: '{print $NF}')" = "$hc_port"
check compose-stop-signal test "$(get 'services\.bouncerd\.stop_signal')" = SIGTERM
cfg_src=$(get 'services\.bouncerd\.volumes\[0\]' | cut -d: -f1)
cfg_dst=$(get 'services\.bouncerd\.volumes\[0\]' | cut -d: -f2)
check compose-config-mounted-where-image-reads grep -q "\"$cfg_dst\"" Dockerfile
listen=$("$Y" "$cfg_src" | sed -n 's/^http\.listen=//p')
check compose-config-listen-port test "${listen##*:}" = "$hc_port"
for s in $(printf '%s\n' "$flat" | sed -n 's/^services\.bouncerd\.secrets\[[0-9]*\]=//p'); do
	check "compose-config-uses-secret-$s" grep -q "/run/secrets/$s" "$cfg_src"
done

# the mounted config is valid for bouncerd (paths mapped to this tree)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$SRC/tests/fixtures/demo/01-postfix-userunknown.eml" "$tmp/cert.pem"
sed -e "s|/run/secrets/|$SRC/docker/secrets/|g" -e "s|/certs/cert.pem|$tmp/cert.pem|" \
    "$cfg_src" >"$tmp/bouncerd.yaml"
if out=$("$B/bin/bouncerd" -c "$tmp/bouncerd.yaml" --check-config 2>&1); then
	ok compose-config-check
else
	bad compose-config-check "$(echo "$out" | head -n 5 | tr '\n' ' ')"
fi

# the build stage's steps, run as written, in a copy of the tree
steps=$(sed -n '/^# BUILD-STEPS/,/^# END-BUILD-STEPS/p' Dockerfile | sed -n 's/^RUN //p')
check dockerfile-has-build-steps test -n "$steps"
git -C "$SRC" ls-files -z --cached --others --exclude-standard |
    (cd "$SRC" && xargs -0 cp --parents -t "$tmp" 2>/dev/null)
mkdir -p "$tmp/out"
if (cd "$tmp" && printf '%s\n' "$steps" | sed "s|DESTDIR=/out|DESTDIR=$tmp/out|" |
    while read -r line; do echo "+ $line"; env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL sh -c "$line" || exit 1; done) >"$tmp/build.log" 2>&1 &&
    "$tmp/out/usr/bin/bouncerd" --version >/dev/null &&
    test -f "$tmp/out/usr/bin/bounce-parse"; then
	ok dockerfile-build-steps-run
else
	bad dockerfile-build-steps-run "$(tail -n 5 "$tmp/build.log" | tr '\n' ' ')"
fi
