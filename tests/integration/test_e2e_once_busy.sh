#!/usr/bin/env bash
# test_e2e_once_busy.sh - bouncerd --once when another process holds a
# mailbox's lock: it says so at info and exits 3 (not 0: it did nothing
# there), leaves the mail alone, and exits 0 once the lock is free.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services once_busy
fresh_db once_busy
U=$(pop_user 3)
clear_mailbox "$U"
write_config "$TMP/c.yaml" "" 1 1m 3:delete
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
check "first run: exit status" 0 $?
MB=$(sql "SELECT id FROM mailboxes WHERE name = 'mb3'")
seed "$U" dsn-hard 1

# another process holds the lock (bouncerd's advisory lock class, the
# mailbox id) while --once runs
KEY=$(( 0x626f756e ))
PGAPPNAME=bouncerd-test-lockholder psql "$DB" -qAt -c "SELECT pg_advisory_lock($KEY, $MB::integer); SELECT pg_sleep(30)" >/dev/null 2>&1 &
HOLDER=$!
PIDS+=("$HOLDER")
held() { [ "$(sql "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $KEY AND objid = $MB AND granted")" = "$1" ]; }
wait_for 10 held 1
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log2"
check "locked elsewhere: exit status 3" 3 $?
grep -q 'mailbox locked by another process: skipped' "$TMP/log2" &&
	pass "locked elsewhere: said at info" ||
	fail "locked elsewhere: said at info" "$(cat "$TMP/log2")"
check "locked elsewhere: mail left alone" 1 "$(mail_count "$U")"
check "locked elsewhere: nothing recorded" 0 "$(sql "SELECT count(*) FROM bounces")"

sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bouncerd-test-lockholder'" >/dev/null
wait "$HOLDER" 2>/dev/null
wait_for 10 held 0
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log3"
check "lock free again: exit status 0" 0 $?
check "lock free again: recorded" 1 "$(sql "SELECT count(*) FROM bounces")"
[ "$FAILS" = 0 ]
