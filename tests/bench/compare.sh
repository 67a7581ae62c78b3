#!/usr/bin/env bash
# compare.sh [BUILD_DIR] - bench_e2e and bench_dsn of two revisions on the
# same machine, the same services and the same corpus, in alternating runs.
#
#   BEFORE   revision measured first in each round (default 0ce9e91)
#   AFTER    revision measured second (default: the working tree, built in
#            BUILD_DIR of this checkout, default build-bench)
#   RUNS     rounds (default 3): before, after, before, after, ...
#
# A revision is checked out in a git worktree of its own under
# $COMPARE_TMP (default /tmp/bouncerd-compare) and built there in
# build-bench-before (or build-bench-after); COMPARE_KEEP=1 keeps the
# worktrees for the next comparison, otherwise they are removed at the end.
# One PostgreSQL and one Dovecot (tests/services.sh of this checkout) serve
# every run.  Only the corpus is read from outside the trees:
# $BOUNCER_SHARED/corpus/eml (default ../shared next to this checkout).
# The benchmarks' own knobs pass through (BENCH_E2E_MESSAGES, BENCH_BATCH,
# BENCH_SECONDS, BENCH_CLI_REPEAT, BENCH_CLI_ROUNDS); BENCH_E2E_RUNS is 1.
# Prints a table of the key figures per run, the medians per revision, and
# where the full output of every run is kept.  Must run as root (services).
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=${1:-build-bench}
BEFORE=${BEFORE:-0ce9e91}
AFTER=${AFTER:-}
RUNS=${RUNS:-3}
WT=${COMPARE_TMP:-/tmp/bouncerd-compare}
export BOUNCER_SHARED=${BOUNCER_SHARED:-$(readlink -m "$SRC/../shared")}
export BENCH_E2E_RUNS=1
JOBS=$(nproc)

die() { echo "compare: $*" >&2; exit 1; }

mkdir -p "$WT" || die "cannot create $WT"
OUT=$(mktemp -d "$WT/out.XXXXXX")
SVC=$(mktemp -d /tmp/bouncerd-compare-svc.XXXXXX)
chmod 755 "$SVC"
TREES=()
cleanup() {
	local t
	bash "$SRC/tests/services.sh" stop "$SVC" >/dev/null 2>&1
	rm -rf "$SVC"
	[ "${COMPARE_KEEP:-0}" = 1 ] && return
	for t in "${TREES[@]}"; do
		git -C "$SRC" worktree remove --force "$t" >/dev/null 2>&1
	done
}
trap cleanup EXIT

# A worktree of REV under $WT (reused when already at REV), its path in
# TREE.
worktree() {	# REV
	local sha
	sha=$(git -C "$SRC" rev-parse --verify -q "$1^{commit}") || return 1
	TREE=$WT/tree-${sha:0:12}
	if [ "$(git -C "$TREE" rev-parse -q HEAD 2>/dev/null)" != "$sha" ]; then
		rm -rf "$TREE"
		git -C "$SRC" worktree prune
		git -C "$SRC" worktree add -q --detach "$TREE" "$sha" >&2 || return 1
	fi
	TREES+=("$TREE")
}

# Builds the binaries, tests and benchmarks of TREE in BUILD, a path (make
# output in the log under $OUT).
build() {	# TREE BUILD NAME
	echo "compare: building $3 in $2" >&2
	make -C "$1" -j"$JOBS" B="${2#"$1"/}" tests >"$OUT/make.$3.log" 2>&1 ||
		die "$3 does not build (see $OUT/make.$3.log)"
}

if [ -n "$AFTER" ]; then
	worktree "$AFTER" || die "no revision $AFTER"
	A_TREE=$TREE
	A_BUILD=$TREE/build-bench-after
	A_NAME=$(git -C "$SRC" rev-parse --short "$AFTER")
else
	A_TREE=$SRC
	A_BUILD=$B
	[[ $B == /* ]] || A_BUILD=$SRC/$B
	A_NAME="working tree"
fi
worktree "$BEFORE" || die "no revision $BEFORE"
B_TREE=$TREE
B_BUILD=$TREE/build-bench-before
B_NAME=$(git -C "$SRC" rev-parse --short "$BEFORE")
build "$B_TREE" "$B_BUILD" before
build "$A_TREE" "$A_BUILD" after
for t in "$B_BUILD" "$A_BUILD"; do
	[ -x "$t/tests/bench/bench_dsn" ] || die "$t/tests/bench/bench_dsn missing"
done

bash "$SRC/tests/services.sh" start "$SVC" >"$OUT/services.log" 2>&1 ||
	die "services failed to start (see $OUT/services.log)"
set -a
. "$SVC/env"
set +a

# One benchmark of one side, its output into $OUT/KIND.SIDE.RUN.
run_one() {	# KIND SIDE RUN
	local tree build f=$OUT/$1.$2.$3
	if [ "$2" = before ]; then tree=$B_TREE build=$B_BUILD; else tree=$A_TREE build=$A_BUILD; fi
	echo "compare: round $3: $1 $2" >&2
	if [ "$1" = e2e ]; then
		BOUNCER_SRC=$tree BOUNCER_BUILD=$build bash "$tree/tests/bench/bench_e2e.sh" >"$f" 2>&1
	else
		(cd "$tree" && BOUNCER_SRC=$tree BOUNCER_BUILD=$build "$build/tests/bench/bench_dsn") >"$f" 2>&1
	fi
}

# The first match of sed expression EXPR in FILE, or "-".
pick() {	# FILE EXPR
	local v
	v=$(sed -n "$2" "$1" 2>/dev/null | head -1)
	echo "${v:--}"
}

# The key figures of bench_e2e: pass msg/s, pass/curl, CPU per 10,000,
# CPU ratio to bare GMime, peak RSS in MB.
e2e_figures() {	# FILE
	echo "$(pick "$1" 's/.*bouncerd --once:.* the pass [0-9.?]* s = \([0-9]*\) msg\/s.*/\1/p')" \
	    "$(pick "$1" 's/.*pass \/ curl CLI retrieval: \([0-9.]*\).*/\1/p')" \
	    "$(pick "$1" 's/.*bouncerd CPU: .* = \([0-9.]*\) s per 10,000.*/\1/p')" \
	    "$(pick "$1" 's/.*cpu_ratio=\([0-9.-]*\).*/\1/p')" \
	    "$(pick "$1" 's/.*peak RSS \([0-9]*\) MB.*/\1/p')"
}

# The key figures of bench_dsn: whole-CLI msg/s, bare GMime msg/s (the
# best runs), their ratio.
dsn_figures() {	# FILE
	echo "$(pick "$1" 's/.*bounce-parse --format tsv .* = *\([0-9]*\) \/ .*/\1/p')" \
	    "$(pick "$1" 's/.*gmime_walk (read + bare parse+walk) .* = *\([0-9]*\) \/ .*/\1/p')" \
	    "$(pick "$1" 's/.*bounce-parse \/ bare GMime: \([0-9.]*\) (best).*/\1/p')"
}

echo "compare: before = $B_NAME ($B_BUILD), after = $A_NAME ($A_BUILD); $RUNS rounds, ${BENCH_E2E_MESSAGES:-10000} messages per bench_e2e; corpus $BOUNCER_SHARED/corpus/eml" >&2
for ((r = 1; r <= RUNS; r++)); do
	for kind in e2e dsn; do
		for side in before after; do
			run_one "$kind" "$side" "$r"
		done
	done
done

fmt='%-6s %-5s %9s %9s %8s %9s %6s | %9s %9s %8s\n'
{
	echo "bench_e2e: ${BENCH_E2E_MESSAGES:-10000} real bounces, before = $B_NAME, after = $A_NAME; bench_dsn: the corpus as whole processes (best run)"
	# shellcheck disable=SC2059
	printf "$fmt" side run "pass/s" "pass/curl" "cpu/10k" cpu_ratio "rss" "cli/s" "gmime/s" "cli/gmime"
	for side in before after; do
		for ((r = 1; r <= RUNS; r++)); do
			# shellcheck disable=SC2046,SC2059
			printf "$fmt" "$side" "$r" $(e2e_figures "$OUT/e2e.$side.$r") $(dsn_figures "$OUT/dsn.$side.$r")
		done
	done
} >"$OUT/table"
cat "$OUT/table"
# The median of each column per side ("-" where no run gave a number).
awk -v fmt="$fmt" 'NR > 2 {
		for (i = 3; i <= 11; i++) if (i != 8 && $i != "-") { v[$1, i, ++c[$1, i]] = $i }
	}
	function median(s, i,    k, j, t, m) {
		m = c[s, i]
		if (m == 0) return "-"
		for (k = 1; k <= m; k++) a[k] = v[s, i, k]
		for (k = 2; k <= m; k++) for (j = k; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		t = (m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2)
		return sprintf(i == 7 || t >= 100 ? "%.0f" : "%.2f", t)
	}
	END { for (s = 0; s < 2; s++) { side = s ? "after" : "before"
		printf fmt, side, "median", median(side, 3), median(side, 4), median(side, 5), median(side, 6),
		    median(side, 7), median(side, 9), median(side, 10), median(side, 11) } }' "$OUT/table"
echo "(pass/s: the bouncerd pass's msg/s; pass/curl: against the curl CLI's retrieval of the same messages; cpu/10k: bouncerd's CPU seconds per 10,000; cpu_ratio: that against a bare GMime parse+walk of the same files (- where the revision does not print it); rss: peak MB; cli/s, gmime/s: bounce-parse --format tsv and gmime_walk msg/s; cli/gmime: their ratio)"
echo "compare: full output of every run in $OUT; $((SECONDS / 60)) min $((SECONDS % 60)) s in all"
