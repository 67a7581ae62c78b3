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

# CPU time (1/100 s) used so far by a service: its main process, its live
# children and the children it has reaped.  The services share the
# machine's cores with bouncerd, so this is where a pass's CPU went.
svc_ticks() {	# PID
	local t=0 p v
	for p in "$1" $(pgrep -P "$1"); do
		v=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat" 2>/dev/null) || v=0
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
PG_PID=$(head -1 "$BOUNCER_TEST_PG_DATA/postmaster.pid" 2>/dev/null)
DC_PID=$(awk '$1 == "dovecot" { print $2 }' "$BOUNCER_TEST_DIR/pids" 2>/dev/null)
cpu_snap() { echo "$(svc_ticks "${PG_PID:-0}") $(svc_ticks "${DC_PID:-0}")"; }
cpu_secs() {	# "PG DC" before, "PG DC" after -> "postgres X s, dovecot Y s"
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x); split(b, y)
		printf "postgres %.2f s, dovecot %.2f s", (y[1] - x[1]) / 100, (y[2] - x[2]) / 100 }'
}

c0=$(cpu_snap)
read -r rn rbytes rsecs rrate < <(raw)
c1=$(cpu_snap)
raw_cpu=$(cpu_secs "$c0" "$c1")

# The same messages with the curl command-line tool, one connection.
curl_line="curl CLI not run"
if command -v curl >/dev/null; then
	t0=$(date +%s.%N)
	if curl -sS --fail --cacert "$BOUNCER_TEST_POP3_CA" -u "$U:$(pop_pass 1)" \
	    "pop3s://127.0.0.1:$BOUNCER_TEST_POP3S_PORT/[1-$N]" >/dev/null; then
		t1=$(date +%s.%N)
		crate=$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
		curl_line="curl CLI retrieval (RETR all, one connection): $N messages in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') s = $crate msg/s"
	fi
fi

c0=$(cpu_snap)
/usr/bin/time -f '%e %M %U %S' -o "$TMP/time" "$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
rc=$?
c1=$(cpu_snap)
e2e_cpu=$(cpu_secs "$c0" "$c1")
read -r esecs rss_kb ucpu scpu <"$TMP/time"
recorded=$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")
bounces=$(sql "SELECT count(*) FROM bounces")
left=$(mail_count "$U")
pass_s=$(sed -n 's/.*pass done.* seconds=\([0-9.]*\).*/\1/p' "$TMP/log")
erate=$(awk -v n="$recorded" -v s="$esecs" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
prate=$(awk -v n="$recorded" -v s="$pass_s" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
echo "messages: $N bounces ($((rbytes / 1024)) KiB), batch_size ${BENCH_BATCH:-50}, 1 worker"
echo "raw POP3 retrieval (bouncerd's POP3 client: UIDL + RETR all + QUIT): $rn messages in ${rsecs} s = $rrate msg/s"
echo "$curl_line"
echo "bouncerd --once (whole process): $recorded recorded, $bounces bounce rows, $left left on the server, exit $rc, in ${esecs} s = $erate msg/s"
echo "bouncerd pass alone (from its log line): ${pass_s} s = $prate msg/s"
echo "end-to-end / raw: $(awk -v a="$erate" -v b="$rrate" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }') (whole process), $(awk -v a="$prate" -v b="$rrate" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }') (pass)"
[ -n "${crate:-}" ] && echo "end-to-end / curl CLI retrieval: $(awk -v a="$prate" -v b="$crate" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }') (pass)"
echo "peak RSS of bouncerd: $((rss_kb / 1024)) MB ($rss_kb KiB); its CPU: ${ucpu} s user + ${scpu} s system"
echo "CPU of the services during the raw retrieval: $raw_cpu; during the bouncerd run: $e2e_cpu (2 cores shared by all three)"
echo "where the pass spent its time (decode and store summed over the 2 committer threads): $(sed -n 's/.*pass timing mailbox=[^ ]* //p' "$TMP/log")"
