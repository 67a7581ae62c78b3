#!/usr/bin/env bash
# test_e2e_crash_message.sh - a message on which the process dies while
# decoding it (killed as by the OOM killer: an LD_PRELOAD wrapper around
# GMime's parser sends SIGKILL for a marked message) is recognised on the
# next pass, tried alone so the messages decoded beside it are recorded,
# and quarantined after quarantine_after deaths of its own; it stays on
# the server, and nothing else is lost or counted twice.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services crash_message
command -v cc >/dev/null || { skip crash_message "no C compiler"; exit 0; }
cc -shared -fPIC -o "$TMP/crash.so" "$SRC/tests/integration/preload_crash.c" \
    $(pkg-config --cflags --libs gmime-3.0) 2>"$TMP/cc.log" ||
	{ fail "preload library builds" "$(head -c 300 "$TMP/cc.log")"; exit 1; }
fresh_db crash_message
U=$(pop_user 1)
clear_mailbox "$U"
seed "$U" dsn-hard 1; seed "$U" dsn-hard 2
# the marked message, between the others
md=$(maildir "$U")
sed -e 's/@ID@/3/g' -e '1i X-Bouncerd-Test-Crash: yes' \
    "$FIX/dsn-hard.eml" >"$md/tmp/crash.3"
chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$md/tmp/crash.3"
mv "$md/tmp/crash.3" "$md/new/crash.3"
seed "$U" dsn-hard 4; seed "$U" arf 5
write_config "$TMP/c.yaml" "" 1 10s 1:delete
"$BIN" -c "$TMP/c.yaml" --migrate 2>>"$TMP/log" || fail "migrate" "exit $?"

run_crashing() {	# -> exit status of one --once run under the wrapper
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
	    LD_PRELOAD="$TMP/crash.so" "$BIN" -c "$TMP/c.yaml" --once \
	    2>>"$TMP/log"
}
outcomes() {
	sql "SELECT string_agg(outcome || ':' || failures, ',' ORDER BY uidl)
	     FROM messages"
}

run_crashing; rc=$?
check "pass 1: killed while decoding" 137 "$rc"
check "pass 1: all five marked, none recorded" "5|5|0" \
    "$(sql "SELECT count(*), count(*) FILTER (WHERE outcome = 'failed'
	AND error LIKE 'interrupted%'), count(*) FILTER (WHERE outcome =
	'recorded') FROM messages")"
check "pass 1: nothing deleted" 5 "$(mail_count "$U")"

run_crashing; rc=$?
check "pass 2: killed again, on the marked message alone" 137 "$rc"
grep -q 'never finished: decoding it alone' "$TMP/log" &&
	pass "pass 2: suspects logged" || fail "pass 2: suspects logged" "no line"
# the ones listed after it went first on pass 3
run_crashing; rc=$?
check "pass 3: killed (attempt alone)" 137 "$rc"
check "pass 2 or 3: the other four recorded" 4 \
    "$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")"

run_crashing; rc=$?
check "pass 4: killed (attempt alone)" 137 "$rc"
check "after pass 4: two deaths alone counted" 2 \
    "$(sql "SELECT failures FROM messages WHERE outcome <> 'recorded'")"

run_crashing; rc=$?
check "pass 5: quarantined without decoding, exit 0" 0 "$rc"
check "pass 5: one quarantined, four recorded" "1|4" \
    "$(sql "SELECT count(*) FILTER (WHERE outcome = 'quarantined'),
	count(*) FILTER (WHERE outcome = 'recorded') FROM messages")"
sql "SELECT error FROM messages WHERE outcome = 'quarantined'" |
	grep -q 'process ended while decoding' &&
	pass "quarantine says why" || fail "quarantine says why" "$(outcomes)"
check "only the quarantined one is left on the server" 1 "$(mail_count "$U")"
grep -q 'X-Bouncerd-Test-Crash' "$md"/cur/* "$md"/new/* 2>/dev/null &&
	pass "the one left is the marked message" ||
	fail "the one left is the marked message" "not found"
check "bounce rows once each" "4|4" \
    "$(sql "SELECT count(*), count(DISTINCT message_id) FROM bounces")"

# without the wrapper, the quarantined message is skipped, not retried
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"; rc=$?
check "later pass: exit 0" 0 "$rc"
check "later pass: nothing changes" "1|4|1" \
    "$(sql "SELECT count(*) FILTER (WHERE outcome = 'quarantined'),
	count(*) FILTER (WHERE outcome = 'recorded'), $(mail_count "$U")
	FROM messages")"
[ "$FAILS" = 0 ]
