#!/usr/bin/env bash
# test_e2e_connections_kept.sh - a worker keeps its database connections,
# its own and those of its two recording threads, from one pass to the
# next: after four passes that each record a bounce, the server processes
# of the recording threads that the second pass left are still there, and
# no more than three were ever seen.  (A new PostgreSQL server process maps
# each page of the shared buffers it touches again, which made every pass
# record slower into a big database.)
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services connections_kept
fresh_db conns
U1=$(pop_user 1)
clear_mailbox "$U1"
CONF=$TMP/c.yaml
write_config "$CONF" "" 1 10s 1:delete

ledger_is() { [ "$(ledger_count "$1")" = "$2" ]; }
mailbox_empty() { [ "$(mail_count "$U1")" = 0 ]; }
backends() {	# the server processes of bouncerd's connections
	sql "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'bouncerd'"
}

"$BIN" -c "$CONF" 2>"$TMP/log" &
PIDS+=("$!")
seen=""
passes=0
for i in 1 2 3 4; do
	seed "$U1" dsn-hard "$i"
	wait_for 30 ledger_is mb1 "$i" || break
	# the pass has ended: its DELE is done, then a moment for the end
	wait_for 30 mailbox_empty || break
	sleep 2
	passes=$i
	now=$(backends | sort | tr '\n' ' ')
	seen="$seen $now"
	[ "$i" = 2 ] && after2=$now
done
last=${now:-}
check "four passes recorded a bounce each" 4 "$passes"
check "recording connections open between passes" 1 \
    "$(n=$(wc -w <<<"$last"); [ "$n" -ge 2 ] && echo 1 || echo "$n after the last pass")"
kept=1
for p in ${after2:-}; do
	[[ " $last " == *" $p "* ]] || kept=0
done
[ "$kept" = 1 ] || kept="0 (after 2: ${after2:-}; after 4: $last)"
check "the second pass's connections still there after the fourth" 1 "$kept"
distinct=$(tr ' ' '\n' <<<"$seen" | grep . | sort -u | wc -l)
check "at most three server processes over four passes" 1 \
    "$([ "$distinct" -le 3 ] && echo 1 || echo "$distinct: $seen")"
check "nothing failed" 0 "$(grep -c '"level":"error"\|level=error' "$TMP/log")"
[ "$FAILS" = 0 ]
