#!/usr/bin/env bash
# test_e2e_health.sh - /healthz while the database hangs: the probe runs on
# a thread of its own, so /healthz answers at once from the last result;
# a probe stuck past 10 s turns it to 503 "unreachable", with no libpq
# text in the answer; it is 200 again once the database answers.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services health
fresh_db health
U=$(pop_user 2)
clear_mailbox "$U"
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
write_config "$TMP/c.yaml" "127.0.0.1:$PORT" 1 10s 2:delete
"$BIN" -c "$TMP/c.yaml" 2>"$TMP/log" &
PID=$!
PIDS+=("$PID")
code() { curl -s -m 5 -o "$TMP/h" -w '%{http_code}' "$URL/healthz"; }
code_is() { [ "$(code)" = "$1" ]; }
wait_for 20 code_is 200 && pass "healthz 200 at first" ||
	fail "healthz 200 at first" "$(cat "$TMP/h" 2>/dev/null; tail -n 5 "$TMP/log")"

# a session holds the lock every probe takes (the migration lock) and the
# table it reads: the probe hangs
KEY=$(( $(sed -n 's/^#define MIGRATE_LOCK_KEY INT64_C(\(0x[0-9a-f]*\)).*/\1/p' "$SRC/internal/store/store.c") ))
PGAPPNAME=bouncerd-test-hang psql "$DB" -qAt -c "BEGIN; SELECT pg_advisory_lock($KEY); LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)" >/dev/null 2>&1 &
PIDS+=("$!")
sleep 3
t0=$(date +%s%N)
c=$(code)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$c" = 200 ] && [ "$ms" -lt 1000 ] &&
	pass "healthz answers at once while a probe hangs ($ms ms)" ||
	fail "healthz answers at once while a probe hangs" "code $c in $ms ms"
wait_for 20 code_is 503 && pass "a stuck probe turns healthz to 503" ||
	fail "a stuck probe turns healthz to 503" "$(cat "$TMP/h")"
grep -q '"database":"unreachable"' "$TMP/h" && ! grep -qi 'lock\|timeout\|server\|connection' "$TMP/h" &&
	pass "503 says unreachable, without libpq's text" ||
	fail "503 says unreachable, without libpq's text" "$(cat "$TMP/h")"
sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bouncerd-test-hang'" >/dev/null
wait_for 20 code_is 200 && pass "healthz 200 again" ||
	fail "healthz 200 again" "$(cat "$TMP/h")"
kill -TERM "$PID"
wait "$PID" 2>/dev/null
[ "$FAILS" = 0 ]
