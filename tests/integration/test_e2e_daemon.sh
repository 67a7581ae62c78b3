#!/usr/bin/env bash
# test_e2e_daemon.sh - bouncerd as a daemon: /healthz and /metrics with
# curl (and junk requests that must not harm it), a failing mailbox that
# never delays the good one and turns /healthz to 503, SIGHUP with a
# broken config (the old one keeps running), SIGHUP with a good one, and
# SIGTERM during a pass (exit 0 quickly, nothing lost).
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services daemon
command -v curl >/dev/null || { skip daemon "curl missing"; exit 0; }
fresh_db daemon
U1=$(pop_user 1) U2=$(pop_user 2) U3=$(pop_user 3)
for u in "$U1" "$U2" "$U3"; do clear_mailbox "$u"; done
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
CONF=$TMP/c.yaml

ledger_is() { [ "$(ledger_count "$1")" = "$2" ]; }
http_up() { curl -s -o /dev/null "$URL/metrics"; }
raw_http() {	# BYTES -> first line of the answer
	exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
	printf "$1" >&3
	timeout 10 head -n 1 <&3 | tr -d '\r'
	exec 3<&-
}

seed "$U1" dsn-hard 1; seed "$U1" dsn-multi 2; seed "$U1" arf 3
seed "$U1" autoreply 4; seed "$U1" plain 5
seed "$U2" dsn-hard 6
BAD_PASSWORD=2 write_config "$CONF" "127.0.0.1:$PORT" 2 10s 1:delete 2:delete
t0=$SECONDS
"$BIN" -c "$CONF" 2>"$TMP/log" &
PID=$!
PIDS+=("$PID")

if wait_for 20 http_up; then
	pass "http listener up"
else
	fail "http listener up" "no answer on $URL"
	echo "daemon log (last lines):"
	tail -n 20 "$TMP/log" | sed 's/^/    /'
fi
wait_for 20 ledger_is mb1 5 && pass "good mailbox done while the other fails" ||
    fail "good mailbox done while the other fails" "$(ledger_count mb1) of 5"

# /metrics (once the failing mailbox has failed at least once)
auth_failed() { curl -s "$URL/metrics" | grep -q '^bouncerd_errors_total{mailbox="mb2",kind="auth"}'; }
# the good mailbox's pass has ended (its records are in before its QUIT
# and end-of-pass upkeep, which take longer under a sanitizer)
mb1_pass_ended() { curl -s "$URL/metrics" | grep -q '^bouncerd_last_success_timestamp_seconds{mailbox="mb1"} '; }
wait_for 20 auth_failed
wait_for 20 mb1_pass_ended
m=$(curl -s "$URL/metrics")
check "metrics: fetched" 1 "$(grep -c '^bouncerd_messages_fetched_total{mailbox="mb1"} 5$' <<<"$m")"
check "metrics: recorded" 1 "$(grep -c '^bouncerd_messages_recorded_total{mailbox="mb1"} 5$' <<<"$m")"
check "metrics: deleted" 1 "$(grep -c '^bouncerd_messages_deleted_total{mailbox="mb1"} 5$' <<<"$m")"
check "metrics: bounces by class and reason" 1 "$(grep -c '^bouncerd_bounces_total{class="hard",reason="userunknown"} 2$' <<<"$m")"
check "metrics: auth errors of the failing mailbox" 1 "$(grep -c '^bouncerd_errors_total{mailbox="mb2",kind="auth"} [1-9]' <<<"$m")"
check "metrics: pass duration" 1 "$(grep -c '^bouncerd_pass_duration_seconds_count{mailbox="mb1"} [1-9]' <<<"$m")"
check "metrics: last success" 1 "$(grep -c '^bouncerd_last_success_timestamp_seconds{mailbox="mb1"} 1[0-9]\{9\}$' <<<"$m")"
check "metrics: no success for the failing one" 1 "$(grep -c '^bouncerd_last_success_timestamp_seconds{mailbox="mb2"} 0$' <<<"$m")"
check "metrics: build info" 1 "$(grep -c '^bouncerd_build_info{version="[^"]*"} 1$' <<<"$m")"
check "metrics: content type" 1 "$(curl -s -o /dev/null -w '%{content_type}' "$URL/metrics" | grep -c 'text/plain; version=0.0.4')"
check "log: error line with mailbox and kind" 1 \
    "$(grep 'mailbox=mb2' "$TMP/log" | grep -m1 -c 'kind=auth')"
check "log: no password" 0 "$(grep -c -e "$(pop_pass 1)" -e not-the-password "$TMP/log")"

# /healthz: inside the first three intervals a mailbox without success is
# still given time
check "healthz 200 at first" 200 "$(curl -s -o "$TMP/h" -w '%{http_code}' "$URL/healthz")"
check "healthz body" 1 "$(grep -c '"status":"ok".*"database":"ok"' "$TMP/h")"

# junk
check "unknown path 404" 404 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nope")"
check "POST 405" 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x=1 "$URL/metrics")"
check "garbage 400" "HTTP/1.0 400 Bad Request" "$(raw_http '\x16\x03\x01junk\r\n\r\n')"
check "huge header 431" "HTTP/1.0 431 Request Header Fields Too Large" \
    "$(raw_http "GET /metrics HTTP/1.1\r\nX: $(head -c 9000 /dev/zero | tr '\0' a)\r\n\r\n")"
check "HTTP/2 preface 400" "HTTP/1.0 400 Bad Request" "$(raw_http 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')"
exec 4<>"/dev/tcp/127.0.0.1/$PORT"; printf 'GET /heal' >&4	# left hanging
check "still serving after junk" 200 "$(curl -s -m 3 -o /dev/null -w '%{http_code}' "$URL/metrics")"
exec 4<&-

# SIGHUP with a broken config: the old one keeps running
printf 'database:\n  url: [unclosed\nmailboxes: 3\n' >"$CONF"
kill -HUP "$PID"
wait_for 5 grep -q 'reload failed' "$TMP/log" && pass "broken reload logged" ||
    fail "broken reload logged" "no log line"
kill -0 "$PID" 2>/dev/null && pass "alive after broken reload" || fail "alive after broken reload" "died"
seed "$U1" dsn-hard 7
wait_for 25 ledger_is mb1 6 && pass "old config still polling" ||
    fail "old config still polling" "$(ledger_count mb1) of 6"

# three intervals without success: 503 naming the failing mailbox
while ((SECONDS - t0 < 32)); do sleep 1; done
check "healthz 503 when a mailbox keeps failing" 503 "$(curl -s -o "$TMP/h" -w '%{http_code}' "$URL/healthz")"
check "healthz names it" 1 "$(grep -c '"failing":\["mb2"\]' "$TMP/h")"

# SIGHUP with a good config fixing the password, and a third mailbox
seed "$U3" dsn-hard 8
# and log.level / log.format changed: applied by the reload, no restart
LOG_LEVEL=debug MAX_MESSAGES=5000 write_config "$CONF" "127.0.0.1:$PORT" 2 10s 1:delete 2:delete 3:keep
sed -i 's/^log:$/log:\n  format: json/' "$CONF"
kill -HUP "$PID"
wait_for 5 grep -q 'configuration reloaded' "$TMP/log" && pass "good reload logged" ||
    fail "good reload logged" "no log line"
wait_for 20 grep -q '^{"time":"[^"]*","level":"debug"' "$TMP/log" &&
	pass "reload applies log.level and log.format" ||
	fail "reload applies log.level and log.format" "$(tail -n 2 "$TMP/log")"
wait_for 20 ledger_is mb2 1 && pass "fixed mailbox polled after reload" ||
    fail "fixed mailbox polled after reload" "$(ledger_count mb2)"
wait_for 20 ledger_is mb3 1 && pass "added mailbox polled after reload" ||
    fail "added mailbox polled after reload" "$(ledger_count mb3)"
check "healthz 200 again" 200 "$(curl -s -o "$TMP/h" -w '%{http_code}' "$URL/healthz")"

# SIGTERM in the middle of a pass
ledger_ge() { [ "$(ledger_count "$1")" -ge "$2" ]; }
seed_many "$U1" dsn-hard 10000 12999
if wait_for 30 ledger_ge mb1 30; then
	kill -TERM "$PID"
	t=$SECONDS
	wait "$PID"
	rc=$?
	check "SIGTERM exit status" 0 "$rc"
	if ((SECONDS - t <= 5)); then pass "SIGTERM exits within 5 s"; else
		fail "SIGTERM exits within 5 s" "$((SECONDS - t)) s"; fi
	n=$(ledger_count mb1)
	echo "# SIGTERM after $n of 3006 mb1 messages were recorded"
	if [ "$n" -lt 3006 ]; then pass "SIGTERM landed mid-pass"; else
		fail "SIGTERM landed mid-pass" "all done"; fi
	# committed ones are deleted and marked, the rest is still there
	check "SIGTERM: server + recorded = all" 3006 \
	    "$(($(mail_count "$U1") + $(sql "SELECT count(deleted_at) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = 'mb1'")))"
	check "SIGTERM: every recorded one deleted" 0 \
	    "$(sql "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = 'mb1' AND deleted_at IS NULL")"
	grep -q 'bouncerd stopped' "$TMP/log" && pass "SIGTERM: stop logged" || fail "SIGTERM: stop logged" "no line"
else
	fail "SIGTERM in a pass" "the pass did not start"
	kill -TERM "$PID"; wait "$PID"
fi
# and the rest is picked up by the next run, without duplicates
for i in 1 2 3 4 5; do
	[ "$(mail_count "$U1")" = 0 ] && break
	"$BIN" -c "$CONF" --once 2>>"$TMP/log"
done
check "after restart: all 3006 once" "3006|3006|0" \
    "$(sql "SELECT count(*), count(DISTINCT uidl), $(mail_count "$U1") FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = 'mb1'")"
check "after restart: bounce rows" 3006 "$(sql "SELECT count(*) FROM bounces x JOIN messages m ON m.id = x.message_id JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = 'mb1'")"
[ "$FAILS" = 0 ]
