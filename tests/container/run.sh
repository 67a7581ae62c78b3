#!/usr/bin/env bash
# run.sh - the container test (.ci/run runs it after make check).  Builds
# the images (docker/images.sh, as `make image`), runs --version and
# --check-config in the bouncerd image, brings docker/compose.yml up with
# PostgreSQL and the demo Dovecot, runs every health check the way the
# engine does and times it against its own timeout, waits for /healthz
# through the published port, checks the demo bounces and suppressions
# landed, takes the stack down and checks nothing of it is left; then does
# it again with three bouncerd replicas sharing the two mailboxes and
# checks no message or bounce was recorded twice.
#
# Prints PASS/FAIL/SKIP lines and "N passed, N failed, N skipped"; exits 1
# on any failure.  Uses podman + podman-compose, or docker + docker compose
# (docker/engine.sh); installs podman when root on Debian and neither runs.
# Only where no engine can run at all does it print one SKIP line.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
cd "$SRC"
VERSION=$(sed -n 's/^VERSION[[:space:]]*:=[[:space:]]*//p' Makefile)
PROJECT=bouncerd-ctest-$$
CF=docker/compose.yml
TMP=$(mktemp -d /tmp/bouncerd-ctest.XXXXXX)
T0=$(date +%s)
pass=0 fail=0 skip=0
ENGINE="" COMPOSE=""

ok() { echo "PASS $1${2:+ ($2)}"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name" "$*"; fi; }
note() { echo "# $*"; }

summary() {
	echo "container test: $(($(date +%s) - T0)) s"
	echo "$pass passed, $fail failed, $skip skipped"
}

# The compose tool, run from docker/ with a free published port per
# replica.  Three replicas: --scale with docker compose; podman-compose
# 1.0.3 cannot scale a service with a health check, so it gets the two
# extra services of compose.replicas.yml.
compose() {	# REPLICAS ARGS...
	local n=$1
	shift
	local files=(-f compose.yml) scale=()
	if [ "$n" = 3 ]; then
		if [ "$COMPOSE" = podman-compose ]; then
			files+=(-f compose.replicas.yml)
		elif [ "$1" = up ]; then
			scale=(--scale bouncerd=3)
		fi
	fi
	(cd docker && BOUNCERD_PORT="" timeout -k 10 600 \
	    $COMPOSE -p "$PROJECT" "${files[@]}" "$@" "${scale[@]}")
}

ctrs() {	# [SERVICE] -> container ids of this project (all states);
	# bouncerd includes the replicas of compose.replicas.yml
	local f=(--filter "label=com.docker.compose.project=$PROJECT") s svcs
	if [ -z "${1:-}" ]; then
		"$ENGINE" ps -aq "${f[@]}"
		return
	fi
	svcs=$1
	[ "$1" = bouncerd ] && svcs="bouncerd bouncerd-2 bouncerd-3"
	for s in $svcs; do
		"$ENGINE" ps -aq "${f[@]}" --filter "label=com.docker.compose.service=$s"
	done
}

psql_q() {	# SQL -> one value
	"$ENGINE" exec "$(ctrs postgres | head -n 1)" \
	    psql -U bouncer -d bouncer -tAc "$1" 2>/dev/null
}

cleanup() {
	if [ -n "$COMPOSE" ]; then
		compose 3 down -v >/dev/null 2>&1 || true
		local left
		left=$(ctrs)
		# shellcheck disable=SC2086
		[ -n "$left" ] && "$ENGINE" rm -f $left >/dev/null 2>&1
		"$ENGINE" volume ls -q --filter "label=com.docker.compose.project=$PROJECT" |
		    xargs -r "$ENGINE" volume rm -f >/dev/null 2>&1
		"$ENGINE" network ls -q --filter "label=com.docker.compose.project=$PROJECT" |
		    xargs -r "$ENGINE" network rm >/dev/null 2>&1
		"$ENGINE" network rm "${PROJECT}_default" >/dev/null 2>&1
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- an engine --------------------------------------------------------------
. "$SRC/docker/engine.sh"
if ! engine_pick >"$TMP/engine.log" 2>&1; then
	echo "SKIP container: no container engine can run on this machine ($(tail -n 1 "$TMP/engine.log"))"
	skip=1
	summary
	exit 0
fi
if [ -z "$COMPOSE" ] && [ "$ENGINE" = podman ]; then
	sh docker/deps.sh container >&2 && COMPOSE=podman-compose
fi
note "engine: $ENGINE ($("$ENGINE" --version 2>/dev/null | head -n 1)); compose: ${COMPOSE:-none}"

# --- images -----------------------------------------------------------------
t=$(date +%s)
if sh docker/images.sh "$VERSION" >"$TMP/images.log" 2>&1; then
	ok image-build "$(($(date +%s) - t)) s"
	sed 's/^/# /' "$TMP/images.log"
else
	bad image-build "$(tail -n 20 "$TMP/images.log" | tr '\n' ' ')"
	summary
	exit 1
fi
IMG=bouncerd:$VERSION
insp() { "$ENGINE" image inspect -f "$2" "$1" 2>/dev/null; }
size=$(insp "$IMG" '{{.Size}}')
ok image-size "$((size / 1000000)) MB"
check image-size-under-300mb test "$size" -lt 300000000
check image-label-version test "$(insp "$IMG" '{{index .Config.Labels "org.opencontainers.image.version"}}')" = "$VERSION"
check image-label-title test "$(insp "$IMG" '{{index .Config.Labels "org.opencontainers.image.title"}}')" = bouncerd
check image-label-revision test -n "$(insp "$IMG" '{{index .Config.Labels "org.opencontainers.image.revision"}}')"
check image-user-not-root test "$(insp "$IMG" '{{.Config.User}}')" = 10001:10001
check image-healthcheck-healthz grep -q 'http://127.0.0.1:9187/healthz' <<<"$(insp "$IMG" '{{json .Config.Healthcheck}}')"
check image-dovecot-healthcheck grep -q pop3s-health <<<"$(insp bouncerd-demo-dovecot:latest '{{json .Config.Healthcheck}}')"

v=$("$ENGINE" run --rm --no-healthcheck --read-only "$IMG" --version 2>"$TMP/run.err" | head -n 1)
check image-version-matches-label test "$v" = "bouncerd $VERSION"
mkdir -p "$TMP/certs"
cp tests/fixtures/demo/01-postfix-userunknown.eml "$TMP/certs/cert.pem"
if out=$("$ENGINE" run --rm --no-healthcheck --read-only --memory 256m \
    -v "$SRC/docker/bouncerd.compose.yaml:/etc/bouncerd/bouncerd.yaml:ro" \
    -v "$SRC/docker/secrets:/run/secrets:ro" -v "$TMP/certs:/certs:ro" \
    "$IMG" -c /etc/bouncerd/bouncerd.yaml --check-config 2>&1); then
	ok image-check-config
	check image-check-config-masks-secrets \
	    bash -c '! grep -qF -e "$(cat docker/secrets/pop3_password)" -e "$(cat docker/secrets/db_password)" <<<"$1"' _ "$out"
else
	bad image-check-config "$(echo "$out" | head -n 5 | tr '\n' ' ')"
fi

if [ -z "$COMPOSE" ]; then
	bad compose "no compose tool for $ENGINE (podman-compose or docker compose)"
	summary
	exit 1
fi

# --- health checks, as the engine runs them ---------------------------------
# podman runs a container's check on demand (podman healthcheck run); with
# docker, the daemon runs them and records each result with its duration.
hc_timeout() {	# SERVICE -> seconds, from the compose file
	awk -v s="  $1:" '$0 == s {in_s = 1; next}
	    in_s && /^  [a-z]/ {exit}
	    in_s && /^      timeout:/ {sub(/s$/, "", $2); print $2; exit}' "$CF"
}
healthy() {	# SERVICE WAIT-SECONDS -> 0 once a check passes; prints its duration (ms)
	local svc=$1 until=$(($(date +%s) + $2)) c t0 t1 st
	while [ "$(date +%s)" -lt "$until" ]; do
		for c in $(ctrs "$svc"); do
			if [ "$ENGINE" = podman ]; then
				t0=$(date +%s%N)
				if podman healthcheck run "$c" >/dev/null 2>&1; then
					t1=$(date +%s%N)
					echo $(((t1 - t0) / 1000000))
					return 0
				fi
			else
				st=$(docker inspect -f '{{.State.Health.Status}}' "$c" 2>/dev/null)
				if [ "$st" = healthy ]; then
					# the last check's start and end (RFC 3339)
					docker inspect -f '{{json .State.Health.Log}}' "$c" |
					    python3 -c 'import datetime, json, re, sys
def t(x):
    m = re.match(r"([0-9-]+T[0-9:]+)(?:[.]([0-9]+))?", x)
    return (datetime.datetime.fromisoformat(m.group(1)).timestamp()
            + float("0." + (m.group(2) or "0")))
last = json.load(sys.stdin)[-1]
print(int((t(last["End"]) - t(last["Start"])) * 1000))'
					return 0
				fi
			fi
		done
		sleep 2
	done
	return 1
}
check_health() {	# SERVICE WAIT-SECONDS
	local svc=$1 to ms
	to=$(hc_timeout "$svc")
	if ms=$(healthy "$svc" "$2"); then
		ok "health-$svc" "check took $ms ms, timeout ${to}s"
		check "health-$svc-within-timeout" test "$ms" -lt "$((to * 1000))"
	else
		bad "health-$svc" "not healthy within $2 s"
		"$ENGINE" logs --tail 20 "$(ctrs "$svc" | head -n 1)" 2>&1 | sed 's/^/    /'
	fi
}

port_of() {	# CONTAINER -> host port published for 9187
	"$ENGINE" port "$1" 9187 2>/dev/null | head -n 1 | sed 's/.*://'
}
healthz_all() {	# WAIT-SECONDS -> every bouncerd replica answers /healthz ok
	local until=$(($(date +%s) + $1)) c p good
	while [ "$(date +%s)" -lt "$until" ]; do
		good=0
		for c in $(ctrs bouncerd); do
			p=$(port_of "$c")
			[ -n "$p" ] && curl -fsS -m 5 -o /dev/null "http://127.0.0.1:$p/healthz" 2>/dev/null && good=$((good + 1))
		done
		[ "$good" -gt 0 ] && [ "$good" = "$(ctrs bouncerd | wc -l)" ] && return 0
		sleep 2
	done
	return 1
}
wait_sql() {	# SQL EXPECTED WAIT-SECONDS
	local until=$(($(date +%s) + $3)) got=""
	while [ "$(date +%s)" -lt "$until" ]; do
		got=$(psql_q "$1")
		[ "$got" = "$2" ] && return 0
		sleep 2
	done
	echo "got '$got', want '$2'" >&2
	return 1
}
left_in_mailboxes() {
	"$ENGINE" exec "$(ctrs dovecot | head -n 1)" \
	    sh -c 'ls /srv/mail/*/Maildir/new /srv/mail/*/Maildir/cur | grep -c eml' 2>/dev/null
}
nothing_left() {	# after down: no container and no volume of the project
	[ -z "$(ctrs)" ] &&
	    [ -z "$("$ENGINE" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ]
}

nseed=$(find tests/fixtures/demo -name '*.eml' | wc -l)

# --- one replica --------------------------------------------------------------
t=$(date +%s)
if ! compose 1 up -d >"$TMP/up1.log" 2>&1; then
	bad compose-up "$(tail -n 10 "$TMP/up1.log" | tr '\n' ' ')"
	summary
	exit 1
fi
ok compose-up "$(($(date +%s) - t)) s"
check_health postgres 120
check_health dovecot 120
if healthz_all 180; then
	ok healthz-published-port "$(($(date +%s) - t)) s after up"
else
	bad healthz-published-port "no ok from /healthz within 180 s"
	"$ENGINE" logs --tail 30 "$(ctrs bouncerd | head -n 1)" 2>&1 | sed 's/^/    /'
fi
check_health bouncerd 60
# the demo bounces, seeded by the Dovecot image into both mailboxes
if wait_sql "SELECT count(*) FROM messages" "$((2 * nseed))" 120; then
	ok demo-messages-recorded "$((2 * nseed)) messages"
else
	bad demo-messages-recorded "not every seeded message reached the ledger"
fi
nb1=$(psql_q "SELECT count(*) FROM bounces")
per=$(psql_q "SELECT string_agg(n::text, ',') FROM (SELECT count(*) AS n FROM bounces b JOIN messages m ON m.id = b.message_id GROUP BY m.mailbox_id ORDER BY m.mailbox_id) x")
nsup=$(psql_q "SELECT count(*) FROM suppressions")
note "bounces: $nb1 (per mailbox: $per), suppressions: $nsup"
check demo-bounces-recorded test "${nb1:-0}" -gt 0
check demo-bounces-same-per-mailbox test "${per%,*}" = "${per#*,}"
check demo-suppressions test "${nsup:-0}" -gt 0
check demo-mailboxes-emptied test "$(left_in_mailboxes)" = 0

# hardening as deployed
b=$(ctrs bouncerd | head -n 1)
check bouncerd-memory-limit-256m test "$("$ENGINE" inspect -f '{{.HostConfig.Memory}}' "$b")" = 268435456
mem=$("$ENGINE" stats --no-stream --format '{{.MemUsage}}' "$b" 2>/dev/null | head -n 1)
note "bouncerd memory in use: $mem"
check bouncerd-read-only-root bash -c '! "$1" exec "$2" sh -c ": >/probe" 2>/dev/null' _ "$ENGINE" "$b"
check dovecot-read-only-root bash -c '! "$1" exec "$2" sh -c ": >/probe" 2>/dev/null' _ "$ENGINE" "$(ctrs dovecot | head -n 1)"
envs=$("$ENGINE" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' $(ctrs) 2>/dev/null)
check secrets-not-in-environment bash -c '! grep -qF -e "$(cat docker/secrets/pop3_password)" -e "$(cat docker/secrets/db_password)" <<<"$1"' _ "$envs"

t=$(date +%s)
compose 1 down -v >"$TMP/down1.log" 2>&1
check compose-down-leaves-nothing nothing_left
note "down took $(($(date +%s) - t)) s"

# --- three replicas, two mailboxes ----------------------------------------------
t=$(date +%s)
if ! compose 3 up -d >"$TMP/up3.log" 2>&1; then
	bad compose-up-3-replicas "$(tail -n 10 "$TMP/up3.log" | tr '\n' ' ')"
	summary
	exit 1
fi
check compose-3-replicas test "$(ctrs bouncerd | wc -l)" = 3
check_health postgres 120
check_health dovecot 120
if healthz_all 180; then
	ok healthz-3-replicas "$(($(date +%s) - t)) s after up"
else
	bad healthz-3-replicas "not every replica answered /healthz ok within 180 s"
fi
# five more batches land while all three replicas poll: passes long
# enough for the replicas to run into each other's locks
batches=5
for _ in $(seq "$batches"); do
	"$ENGINE" exec "$(ctrs dovecot | head -n 1)" sh /usr/local/bin/dovecot-demo seed >/dev/null
done
want=$((2 * nseed * (batches + 1)))
if wait_sql "SELECT count(*) FROM messages" "$want" 240; then
	ok replicas-messages-recorded "$want messages"
else
	bad replicas-messages-recorded "not every seeded message reached the ledger"
fi
sleep 18 # one more interval: a duplicate would show now
check replicas-no-duplicate-message test "$(psql_q "SELECT count(*) FROM messages")" = "$want"
nb3=$(psql_q "SELECT count(*) FROM bounces")
check replicas-no-duplicate-bounce test "$nb3" = "$((nb1 * (batches + 1)))"
check replicas-no-duplicate-row test "$(psql_q "SELECT count(*) FROM (SELECT 1 FROM bounces GROUP BY message_id, recipient, status, action HAVING count(*) > 1) d")" = 0
check replicas-mailboxes-emptied test "$(left_in_mailboxes)" = 0
worked=0
for c in $(ctrs bouncerd); do
	"$ENGINE" logs "$c" 2>&1 | grep -q 'pass done.*fetched=[1-9]' && worked=$((worked + 1))
done
note "replicas that fetched messages in some pass: $worked of 3"
t=$(date +%s)
compose 3 down -v >"$TMP/down3.log" 2>&1
check compose-down-3-replicas-leaves-nothing nothing_left
note "down took $(($(date +%s) - t)) s"

summary
[ "$fail" = 0 ]
