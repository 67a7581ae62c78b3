#!/usr/bin/env bash
# test_crash_services.sh - the servers fail under a running bouncerd:
# PostgreSQL restarted in the middle of a pass (the daemon reconnects and
# finishes the mailbox), and Dovecot stopped in the middle of a pass (the
# pass fails, nothing uncommitted is deleted, the next passes finish).
# Afterwards: one ledger row and one set of bounce rows per message.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services crash_services
for v in BOUNCER_TEST_PG_BIN BOUNCER_TEST_PG_DATA BOUNCER_TEST_DOVECOT_CONF BOUNCER_TEST_DIR; do
	if [ -z "${!v:-}" ]; then skip crash_services "$v not set"; exit 0; fi
done
U=$(pop_user 5)

# services.sh stops the servers by the PIDs it wrote down: keep them true.
note_pid() {	# NAME PID
	sed -i "s/^$1 .*/$1 $2/" "$BOUNCER_TEST_DIR/pids"
}

pg_restart() {
	runuser -u postgres -- "$BOUNCER_TEST_PG_BIN/pg_ctl" -D "$BOUNCER_TEST_PG_DATA" \
	    -l "$BOUNCER_TEST_PG_DATA/../postgres.log" -m fast -w -t 60 restart \
	    </dev/null >/dev/null 2>&1
	local rc=$?
	note_pid pg "$(head -n 1 "$BOUNCER_TEST_PG_DATA/postmaster.pid")"
	return $rc
}

ledger_ge() { [ "$(sql "SELECT count(*) FROM messages" 2>/dev/null || echo 0)" -ge "$1" ]; }
deleted_is() { [ "$(sql "SELECT count(deleted_at) FROM messages" 2>/dev/null || echo 0)" = "$1" ]; }
mailbox_empty() { [ "$(mail_count "$U")" = 0 ]; }

invariants() {	# PREFIX MESSAGES BOUNCE_ROWS
	check "$1: mailbox emptied" 0 "$(mail_count "$U")"
	check "$1: one ledger row per message" "$2|$2|$2" \
	    "$(sql "SELECT count(*), count(DISTINCT uidl), count(DISTINCT email_message_id) FROM messages")"
	check "$1: all recorded, all marked deleted" "$2|$2" \
	    "$(sql "SELECT count(*) FILTER (WHERE outcome = 'recorded'), count(deleted_at) FROM messages")"
	check "$1: one set of bounce rows per message" "$3|0" \
	    "$(sql "SELECT count(*), (SELECT count(*) FROM (SELECT recipient FROM bounces GROUP BY recipient HAVING count(*) > 1) d) FROM bounces")"
}

# --- PostgreSQL restarted mid-pass -----------------------------------------
fresh_db pgrestart
# a pass long enough to restart the server inside it
clear_mailbox "$U"
seed_many "$U" dsn-hard 1 3000
MAX_MESSAGES=3000 BATCH_SIZE=5 write_config "$TMP/c.yaml" "" 1 10s 5:delete
"$BIN" -c "$TMP/c.yaml" --migrate 2>>"$TMP/log" || fail "migrate" "exit $?"
"$BIN" -c "$TMP/c.yaml" 2>>"$TMP/log.pg" &
pid=$!
PIDS+=("$pid")
wait_for 20 ledger_ge 20
before=$(sql "SELECT count(*) FROM messages")
pg_restart || fail "pg restart" "pg_ctl restart failed"
echo "# PostgreSQL restarted with $before of 3000 messages recorded"
if [ "$before" -lt 3000 ]; then pass "restart landed mid-pass"; else
	fail "restart landed mid-pass" "all 500 were done before the restart"; fi
# the daemon reconnects by itself: the next pass (10 s later) finishes
if wait_for 90 mailbox_empty; then pass "daemon finished after the restart"; else
	fail "daemon finished after the restart" "$(mail_count "$U") left"; fi
# ledger rows marked deleted after QUIT may lag by a pass: give it one
wait_for 30 deleted_is 3000
kill -TERM "$pid"
wait "$pid"
check "pg: SIGTERM exit status" 0 $?
invariants pg 3000 3000
grep -q 'pass done' "$TMP/log.pg" && pass "pg: passes logged" || fail "pg: passes logged" "none"

# --- Dovecot stopped mid-pass (and down for a pass) ----------------------------------------------
fresh_db dovecot
# as many messages as the PostgreSQL case, so the stop lands inside the pass
clear_mailbox "$U"
seed_many "$U" dsn-hard 1 3000
MAX_MESSAGES=3000 BATCH_SIZE=5 write_config "$TMP/c.yaml" "" 1 10s 5:delete
"$BIN" -c "$TMP/c.yaml" --migrate 2>>"$TMP/log" || fail "migrate" "exit $?"
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log.dc" &
pid=$!
wait_for 20 ledger_ge 20
# A graceful stop lets running sessions finish: the server process of our
# session (its pid is in the login line of the log) is killed first, then
# the master is stopped.
mpid=$(grep "Login: user=<$U>" "$BOUNCER_TEST_DOVECOT_LOG" | tail -n 1 | sed -n 's/.*mpid=\([0-9]*\).*/\1/p')
if [ -n "$mpid" ]; then kill -KILL "$mpid"; else fail "session pid" "not in the log"; fi
doveadm -c "$BOUNCER_TEST_DOVECOT_CONF" stop >/dev/null 2>&1
before=$(sql "SELECT count(*) FROM messages")
wait "$pid"
rc=$?
echo "# Dovecot stopped with $before of 3000 messages recorded; the pass exited $rc"
if [ "$before" -lt 3000 ] && [ "$rc" != 0 ]; then pass "stop landed mid-pass, pass failed"; else
	fail "stop landed mid-pass, pass failed" "before=$before rc=$rc"; fi
check "nothing deleted without QUIT" 3000 "$(mail_count "$U")"
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log.dc"
check "a pass while Dovecot is down fails" 1 $?
dovecot -c "$BOUNCER_TEST_DOVECOT_CONF" </dev/null >>"$TMP/dovecot.start" 2>&1 ||
    fail "dovecot restart" "$(cat "$TMP/dovecot.start")"
note_pid dovecot "$(cat "$(dirname "$BOUNCER_TEST_DOVECOT_CONF")/run/master.pid")"
for i in $(seq 1 20); do
	[ "$(mail_count "$U")" = 0 ] && break
	sleep 0.3
	"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log.dc"
done
invariants dovecot 3000 3000
check "dovecot: the first pass after the restart replayed nothing" 0 \
    "$(grep -c 'database refused' "$TMP/log.dc")"
[ "$FAILS" = 0 ]
