#!/usr/bin/env bash
# bench_e2e.sh - end-to-end rate on real bounces: BENCH_E2E_MESSAGES
# (10,000) messages copied round-robin from $BOUNCER_SHARED/corpus/eml
# (else from tests/fixtures/dsn) into a local Dovecot POP3S mailbox, then
# `bouncerd --once` (one mailbox, one worker; RETR, decode, classify,
# record in batches, DELE, QUIT) into PostgreSQL.  In the same run, the
# same messages are retrieved by bouncerd's own POP3 client (UIDL + RETR
# each + QUIT) and by the curl command-line tool on one connection
# (`curl pop3s://host/[1-N]`, twice, the faster counts).  Prints the pass
# rate against curl's, bouncerd's CPU per 10,000 messages, its peak RSS,
# the services' CPU, and where the pass's wall time went (the pass's own
# timing log line).  Next to bouncerd's CPU per 10,000 it prints that of a
# bare GMime parse+walk of the same seeded files (gmime_walk, one process,
# reading the Maildir's files before the pass) and the ratio of the two,
# last in each run, on one line: "bench_e2e: cpu_per_10k_s=A
# gmime_cpu_per_10k_s=B cpu_ratio=A/B" ("-" where gmime_walk is missing or
# failed).  BENCH_E2E_SOURCE=generated seeds the generated dsn-hard/dsn-multi
# messages of tests/fixtures/poller instead.
# BENCH_E2E_RUNS (1) repeats the whole measurement on a fresh mailbox and
# database.  Prints figures; asserts nothing (targets: pass >= 0.8 of
# curl's rate, CPU per 10,000 <= 2.6 s, RSS < 64 MB).
set -uo pipefail
. "$BOUNCER_SRC/tests/integration/lib_poller.sh"
N=${BENCH_E2E_MESSAGES:-10000}
RUNS=${BENCH_E2E_RUNS:-1}
SOURCE=${BENCH_E2E_SOURCE:-real}
RAW=$BUILD/tests/helpers/pop3_retr_all
WALK=$BUILD/tests/bench/gmime_walk
[ -x "$RAW" ] || { echo "bench_e2e: $RAW missing"; exit 1; }
need_services bench_e2e >/dev/null
U=$(pop_user 1)

# The real bounces: the shared corpus where present, else the decoder's
# fixtures (real bounces of many MTAs, anonymised).
CORPUS=${BOUNCER_SHARED:-$SRC/../shared}/corpus/eml
if [ "$SOURCE" = generated ]; then
	SRCDESC="generated (tests/fixtures/poller dsn-hard 80 %, dsn-multi 20 %)"
elif compgen -G "$CORPUS/*.eml" >/dev/null; then
	SRCDIR=$CORPUS
	SRCDESC="real bounces, round-robin from $CORPUS"
else
	SRCDIR=$SRC/tests/fixtures/dsn
	SRCDESC="real bounces, round-robin from tests/fixtures/dsn (no corpus at $CORPUS)"
fi

# N files into the Maildir's tmp/, then all moved to new/ (a delivery).
seed_real() {	# USER
	local md
	md=$(maildir "$1")
	python3 - "$md" "$N" "$BOUNCER_TEST_MAIL_UID" "${BOUNCER_TEST_MAIL_GID:-$BOUNCER_TEST_MAIL_UID}" "$SRCDIR"/*.eml <<'EOF'
import os, sys
md, n, uid, gid, srcs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
data = [open(p, "rb").read() for p in srcs]
names = []
for i in range(n):
    f = "bench.%06d.%d" % (i + 1, os.getpid())
    with open(os.path.join(md, "tmp", f), "wb") as o:
        o.write(data[i % len(data)])
    os.chown(os.path.join(md, "tmp", f), uid, gid)
    names.append(f)
for f in names:
    os.rename(os.path.join(md, "tmp", f), os.path.join(md, "new", f))
EOF
}

seed_generated() {	# USER
	local hard=$((N * 8 / 10))
	seed_many "$1" dsn-hard 1 "$hard"
	seed_many "$1" dsn-multi $((hard + 1)) "$N"
}

raw() { "$RAW" 127.0.0.1 "$BOUNCER_TEST_POP3S_PORT" "$U" "$(pop_pass 1)" "$BOUNCER_TEST_POP3_CA"; }

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
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

# The bare GMime parse+walk of every message in USER's Maildir, as one
# process reading the files: "USER_S SYSTEM_S" of its CPU, or nothing.
walk_cpu() {	# USER
	local md
	[ -x "$WALK" ] || return 1
	md=$(maildir "$1")
	find "$md/new" "$md/cur" -type f | sort >"$TMP/walk.list"
	/usr/bin/time -f '%U %S' -o "$TMP/walk.time" "$WALK" - <"$TMP/walk.list" >/dev/null || return 1
	tail -1 "$TMP/walk.time"
}

# curl over one connection: URL globbing reuses it for every RETR.
curl_secs() {
	local t0 t1
	t0=$(date +%s.%N)
	curl -sS --fail --cacert "$BOUNCER_TEST_POP3_CA" -u "$U:$(pop_pass 1)" \
	    "pop3s://127.0.0.1:$BOUNCER_TEST_POP3S_PORT/[1-$N]" >/dev/null || return 1
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

echo "bench_e2e: $N messages: $SRCDESC; batch_size ${BENCH_BATCH:-50}, 1 worker; $(nproc) cores shared with PostgreSQL and Dovecot"
for ((run = 1; run <= RUNS; run++)); do
	fresh_db "bench$run"
	clear_mailbox "$U"
	if [ "$SOURCE" = generated ]; then seed_generated "$U"; else seed_real "$U"; fi
	LOG_LEVEL=debug MAX_MESSAGES=$N BATCH_SIZE=${BENCH_BATCH:-50} write_config "$TMP/c.yaml" "" 1 10m 1:delete
	# the default command timeout, not the tests' 10 s: Dovecot's QUIT
	# expunges all N messages at once, which can take longer on a busy
	# machine
	sed -i 's/command_timeout: 10s/command_timeout: 60s/' "$TMP/c.yaml"
	"$BIN" -c "$TMP/c.yaml" --migrate 2>/dev/null || { echo "bench_e2e: migrate failed"; exit 1; }
	raw >/dev/null || exit 1	# warm-up: Dovecot builds its index, the page cache fills

	c0=$(cpu_snap)
	read -r rn rbytes rsecs rrate < <(raw)
	c1=$(cpu_snap)
	raw_cpu=$(cpu_secs "$c0" "$c1")

	cs1=""; cs2=""; cbest=""
	if command -v curl >/dev/null; then
		cs1=$(curl_secs) || cs1=""
		cs2=$(curl_secs) || cs2=""
		cbest=$(printf '%s\n' $cs1 $cs2 | sort -g | head -1)
	fi

	wcpu=$(walk_cpu "$U") || wcpu=""
	wfiles=$(wc -l <"$TMP/walk.list" 2>/dev/null || echo 0)

	c0=$(cpu_snap)
	/usr/bin/time -f '%e %M %U %S' -o "$TMP/time" "$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
	rc=$?
	c1=$(cpu_snap)
	e2e_cpu=$(cpu_secs "$c0" "$c1")
	read -r esecs rss_kb ucpu scpu < <(tail -1 "$TMP/time")
	recorded=$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")
	ledger=$(sql "SELECT count(*) FROM messages")
	bounces=$(sql "SELECT count(*) FROM bounces")
	left=$(mail_count "$U")
	pass_s=$(sed -n 's/.*pass \(done\|failed\).* seconds=\([0-9.]*\).*/\2/p' "$TMP/log" | tail -1)
	said=$(sed -n 's/.* \(error\|warn\) /  bouncerd said: \1 /p' "$TMP/log" | grep -v webhook | head -3)
	timing=$(sed -n 's/.*pass timing mailbox=[^ ]* //p' "$TMP/log" | tail -1)
	cpu10k=$(awk -v u="$ucpu" -v s="$scpu" -v n="$N" 'BEGIN { printf "%.2f", (u + s) * 10000 / n }')

	echo "bench_e2e: run $run of $RUNS"
	echo "  POP3 retrieval, bouncerd's client (UIDL + RETR all + QUIT): $rn messages, $((rbytes / 1024)) KiB in $rsecs s = $rrate msg/s"
	if [ -n "$cbest" ]; then
		echo "  curl CLI retrieval (RETR 1..$N, one connection): ${cs1:-failed} s and ${cs2:-failed} s; the faster = $(rate "$N" "$cbest") msg/s"
	else
		echo "  curl CLI retrieval: not run (no curl, or it failed)"
	fi
	echo "  bouncerd --once: exit $rc, $ledger messages in the ledger ($recorded recorded), $bounces bounce rows, $left left on the server; whole process ${esecs} s = $(rate "$N" "$esecs") msg/s; the pass ${pass_s:-?} s = $(rate "$N" "${pass_s:-0}") msg/s"
	[ -n "$cbest" ] && [ -n "$pass_s" ] &&
		echo "  pass / curl CLI retrieval: $(awk -v c="$cbest" -v p="$pass_s" 'BEGIN { printf "%.2f", c / p }') (target >= 0.8); whole process / curl: $(awk -v c="$cbest" -v p="$esecs" 'BEGIN { printf "%.2f", c / p }')"
	[ -n "$said" ] && echo "$said"
	echo "  pass / bouncerd's own retrieval: $(awk -v r="$rsecs" -v p="${pass_s:-0}" 'BEGIN { printf "%.2f", (p > 0 ? r / p : 0) }')"
	echo "  bouncerd CPU: ${ucpu} s user + ${scpu} s system = $cpu10k s per 10,000 messages; peak RSS $((rss_kb / 1024)) MB ($rss_kb KiB)"
	if [ -n "$wcpu" ]; then
		read -r wu ws <<<"$wcpu"
		g10k=$(awk -v u="$wu" -v s="$ws" -v n="$wfiles" 'BEGIN { printf "%.2f", (n > 0 ? (u + s) * 10000 / n : 0) }')
		ratio=$(awk -v a="$ucpu" -v b="$scpu" -v u="$wu" -v s="$ws" -v n="$N" -v f="$wfiles" \
		    'BEGIN { g = (f > 0 ? (u + s) * n / f : 0); printf "%s", (g > 0 ? sprintf("%.2f", (a + b) / g) : "-") }')
		echo "  bare GMime parse+walk of the same $wfiles files (gmime_walk, one process): ${wu} s user + ${ws} s system = $g10k s per 10,000 messages; bouncerd CPU / bare GMime CPU: $ratio"
	else
		g10k="-"; ratio="-"
		echo "  bare GMime parse+walk: not run ($WALK missing or failed)"
	fi
	echo "  services' CPU: during bouncerd's retrieval $raw_cpu; during the pass $e2e_cpu"
	# Where the pass's wall time went: every *_ms field of its timing
	# line with its share of the pass (fields of the pass thread add up
	# to at most the pass; those of the committer threads are summed
	# over them and overlap the retrieval).
	if [ -n "$timing" ] && [ -n "$pass_s" ]; then
		echo "  the pass's wall time, ${pass_s} s, by its timing line:"
		printf '%s\n' $timing | awk -F= -v p="$pass_s" '
			$1 ~ /_ms$/ { printf "    %-12s %8.0f ms  %5.1f %% of the pass\n", $1, $2, 100 * $2 / 1000 / p; v[$1] = $2 }
			END { split("begin_ms login_ms list_ms ledger_ms retr_ms wait_ms dele_ms quit_ms upkeep_ms end_ms", t, " ")
				r = 1000 * p; for (i in t) if (t[i] in v) r -= v[t[i]]
				printf "    %-12s %8.0f ms  %5.1f %% of the pass (the pass thread outside the timed steps)\n", "rest", r, 100 * r / 1000 / p }'
		echo "    (decode_ms and store_ms are summed over the committer threads and overlap the retrieval; the others are the pass thread's)"
	fi
	echo "bench_e2e: cpu_per_10k_s=$cpu10k gmime_cpu_per_10k_s=$g10k cpu_ratio=$ratio"
done
exit 0
