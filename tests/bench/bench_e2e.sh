#!/usr/bin/env bash
# bench_e2e.sh - end-to-end rate: 10,000 bounces from a local Dovecot
# POP3S mailbox into PostgreSQL with `bouncerd --once` (one mailbox, one
# worker; RETR, decode, classify, record in batches, DELE, QUIT), with its
# peak RSS, next to the raw POP3 retrieval rate of the same messages in
# the same run (pop3 module only: UIDL + RETR each + QUIT).  Prints
# figures; asserts nothing (targets: >= 60% of raw, RSS < 64 MB).
set -uo pipefail
. "$BOUNCER_SRC/tests/integration/lib_poller.sh"
N=${BENCH_E2E_MESSAGES:-10000}
RAW=$BUILD/tests/helpers/pop3_retr_all
[ -x "$RAW" ] || { echo "bench_e2e: $RAW missing"; exit 1; }
need_services bench_e2e >/dev/null
fresh_db bench
U=$(pop_user 1)
clear_mailbox "$U"
hard=$((N * 8 / 10))
seed_many "$U" dsn-hard 1 "$hard"
seed_many "$U" dsn-multi $((hard + 1)) "$N"
LOG_LEVEL=debug MAX_MESSAGES=$N BATCH_SIZE=${BENCH_BATCH:-50} write_config "$TMP/c.yaml" "" 1 10m 1:delete
"$BIN" -c "$TMP/c.yaml" --migrate 2>/dev/null || { echo "bench_e2e: migrate failed"; exit 1; }

raw() { "$RAW" 127.0.0.1 "$BOUNCER_TEST_POP3S_PORT" "$U" "$(pop_pass 1)" "$BOUNCER_TEST_POP3_CA"; }
raw >/dev/null || exit 1	# warm-up: Dovecot builds its index, the page cache fills
read -r rn rbytes rsecs rrate < <(raw)

/usr/bin/time -f '%e %M %U %S' -o "$TMP/time" "$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
rc=$?
read -r esecs rss_kb ucpu scpu <"$TMP/time"
recorded=$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")
bounces=$(sql "SELECT count(*) FROM bounces")
left=$(mail_count "$U")
pass_s=$(sed -n 's/.*pass done.* seconds=\([0-9.]*\).*/\1/p' "$TMP/log")
erate=$(awk -v n="$recorded" -v s="$esecs" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
prate=$(awk -v n="$recorded" -v s="$pass_s" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
echo "messages: $N bounces ($((rbytes / 1024)) KiB), batch_size ${BENCH_BATCH:-50}, 1 worker"
echo "raw POP3 retrieval (UIDL + RETR all + QUIT): $rn messages in ${rsecs} s = $rrate msg/s"
echo "bouncerd --once (whole process): $recorded recorded, $bounces bounce rows, $left left on the server, exit $rc, in ${esecs} s = $erate msg/s"
echo "bouncerd pass alone (from its log line): ${pass_s} s = $prate msg/s"
echo "end-to-end / raw: $(awk -v a="$erate" -v b="$rrate" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }') (whole process), $(awk -v a="$prate" -v b="$rrate" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }') (pass)"
echo "peak RSS of bouncerd: $((rss_kb / 1024)) MB ($rss_kb KiB); its CPU: ${ucpu} s user + ${scpu} s system"
echo "where the pass spent its time (decode and store summed over the 2 committer threads): $(sed -n 's/.*pass timing mailbox=[^ ]* //p' "$TMP/log")"
