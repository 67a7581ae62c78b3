#!/usr/bin/env bash
# test_e2e_two_processes.sh - two bouncerd daemons on one database and the
# same five mailboxes: the per-mailbox advisory lock keeps them from
# polling one mailbox at once, so the work is done exactly once and
# spreads over both processes.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services two_processes
fresh_db two
total=0
for n in 1 2 3 4 5; do
	u=$(pop_user "$n")
	clear_mailbox "$u"
	seed_many "$u" dsn-hard $((n * 1000)) $((n * 1000 + 79))
	seed_many "$u" dsn-multi $((n * 1000 + 80)) $((n * 1000 + 99))
	total=$((total + 100))
done
# 30 a pass: each mailbox needs several passes, 10 s apart
MAX_MESSAGES=30 write_config "$TMP/c.yaml" "" 2 10s 1:delete 2:delete 3:delete 4:delete 5:delete
"$BIN" -c "$TMP/c.yaml" --migrate 2>>"$TMP/log" || fail "migrate" "exit $?"
"$BIN" -c "$TMP/c.yaml" 2>"$TMP/a.log" &
A=$!
"$BIN" -c "$TMP/c.yaml" 2>"$TMP/b.log" &
B=$!
PIDS+=("$A" "$B")
all_empty() {
	local n
	for n in 1 2 3 4 5; do [ "$(mail_count "$(pop_user "$n")")" = 0 ] || return 1; done
	deleted_all
}
deleted_all() { [ "$(sql "SELECT count(deleted_at) FROM messages")" = "$total" ]; }
if wait_for 150 all_empty; then pass "both finished the mailboxes"; else
	fail "both finished the mailboxes" "$(sql "SELECT count(*) FROM messages") of $total recorded"; fi
kill -TERM "$A" "$B"
wait "$A"; ra=$?
wait "$B"; rb=$?
check "exit statuses" "0 0" "$ra $rb"
check "one ledger row per message" "$total|$total|$total" \
    "$(sql "SELECT count(*), count(DISTINCT (mailbox_id, uidl)), count(DISTINCT email_message_id) FROM messages")"
check "one set of bounce rows per message" "600|0" \
    "$(sql "SELECT count(*), (SELECT count(*) FROM (SELECT recipient FROM bounces GROUP BY recipient HAVING count(*) > 1) d) FROM bounces")"
fa=$(sed -n 's/.*pass done.* fetched=\([0-9]*\) .*/\1/p' "$TMP/a.log" | awk '{ s += $1 } END { print s + 0 }')
fb=$(sed -n 's/.*pass done.* fetched=\([0-9]*\) .*/\1/p' "$TMP/b.log" | awk '{ s += $1 } END { print s + 0 }')
echo "# process A fetched $fa, process B fetched $fb"
check "the two together fetched each message once" "$total" "$((fa + fb))"
if [ "$fa" -gt 0 ] && [ "$fb" -gt 0 ]; then pass "both did some of the work"; else
	fail "both did some of the work" "A=$fa B=$fb"; fi
[ "$FAILS" = 0 ]
