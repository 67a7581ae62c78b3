#!/usr/bin/env bash
# test_crash.sh - kill -9 bouncerd at random moments, 20 times, restarting
# it each time, on a 500-message mailbox, then let it finish.  Afterwards
# every message has exactly one ledger row and one set of bounce rows,
# nothing was lost and the mailbox is empty.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services crash
fresh_db crash
U=$(pop_user 4)
seed_mixed_500 "$U"
check "seeded" 500 "$(mail_count "$U")"

BATCH_SIZE=7 MAX_MESSAGES=20 write_config "$TMP/c.yaml" "" 1 10s 4:delete
# schema first, so that kills land in passes rather than in migrations
"$BIN" -c "$TMP/c.yaml" --migrate 2>>"$TMP/log" || fail "migrate" "exit $?"

kills=0
hi=250	# kill within 10..hi ms of the start
for i in $(seq 1 20); do
	before=$(grep -c 'pass done' "$TMP/log")
	"$BIN" -c "$TMP/c.yaml" 2>>"$TMP/log" &
	pid=$!
	sleep "$(awk -v r=$RANDOM -v hi=$hi 'BEGIN { printf "%.3f", (10 + r % (hi - 9)) / 1000 }')"
	kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
	wait "$pid" 2>/dev/null
	# How long a start-up plus a pass of 20 takes depends on the build
	# (sanitizers) and the load: the window follows it, so that kills
	# land at start-up, inside passes and after them, whatever the speed.
	if [ "$(grep -c 'pass done' "$TMP/log")" -gt "$before" ]; then
		hi=$((hi * 2 / 3 < 20 ? 20 : hi * 2 / 3))
	else
		hi=$((hi * 3 / 2 > 1000 ? 1000 : hi * 3 / 2))
	fi
done
check "killed 20 times" 20 "$kills"
done_passes=$(grep -c 'pass done' "$TMP/log")
echo "# $done_passes of 20 runs finished a pass before their kill"
if [ "$done_passes" -lt 18 ]; then pass "kills interrupted passes"; else
	fail "kills interrupted passes" "only $((20 - done_passes)) of 20"; fi
mid=$(sql "SELECT count(*) FROM messages")
echo "# after 20 kills: $mid ledger rows, $(mail_count "$U") messages left on the server"
if [ "$mid" -gt 0 ] && [ "$mid" -lt 500 ]; then pass "kills landed mid-work"; else
	fail "kills landed mid-work" "$mid ledger rows after the kills"; fi

# let it finish
for i in $(seq 1 30); do
	[ "$(mail_count "$U")" = 0 ] && break
	"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
done

check "mailbox emptied" 0 "$(mail_count "$U")"
check "one ledger row per message" "500|500" "$(sql "SELECT count(*), count(DISTINCT uidl) FROM messages")"
check "no message lost (by Message-ID)" 500 "$(sql "SELECT count(DISTINCT email_message_id) FROM messages")"
check "all recorded and marked deleted" "500|500" \
    "$(sql "SELECT count(*) FILTER (WHERE outcome = 'recorded'), count(deleted_at) FROM messages")"
check "one set of bounce rows per message" 500 "$(sql "SELECT count(*) FROM bounces")"
check "no recipient twice" 0 "$(sql "SELECT count(*) FROM (SELECT recipient FROM bounces GROUP BY recipient HAVING count(*) > 1) d")"
check "bounce rows per kind" "autoreply:50:50 bounce:300:400 complaint:50:50 unknown:100:0" \
    "$(sql "SELECT m.kind || ':' || count(DISTINCT m.id) || ':' || count(x.id) FROM messages m LEFT JOIN bounces x ON x.message_id = m.id GROUP BY m.kind ORDER BY m.kind" | tr '\n' ' ' | sed 's/ $//')"
check "every seeded id present" 500 "$(sql "SELECT count(*) FROM generate_series(1, 500) g WHERE EXISTS (SELECT 1 FROM messages WHERE email_message_id ~ ('^<[a-z-]+-' || g || '@'))")"
[ "$FAILS" = 0 ]
