#!/usr/bin/env bash
# run.sh BUILD_DIR - runs every test binary and test script, unit first,
# then integration against real PostgreSQL and Dovecot started here (and
# stopped on exit, also on failure or interrupt).
#
# Each test prints "PASS name", "FAIL name: why" or "SKIP name: why" lines
# (tests/test.h); a binary that dies without a FAIL line counts as one
# failure.  The last line is "N passed, N failed, N skipped".
# ONLY=pattern runs the tests whose file name contains pattern.
# BOUNCER_TEST_ENV=DIR/env reuses running services instead of starting them.
set -uo pipefail

B=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"
export BOUNCER_SRC=$SRC BOUNCER_BUILD=$SRC/$B
export BOUNCER_SHARED=${BOUNCER_SHARED:-$(readlink -m "$SRC/../shared")}
# Sanitizer builds: abort on the first report, check leaks, but ignore the
# one-time allocations GLib/GMime make for their type system.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRC/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

pass=0 fail=0 skip=0
LOGDIR=$SRC/$B/test-logs
mkdir -p "$LOGDIR"
SVC=""

cleanup() {
	if [ -n "$SVC" ]; then
		bash "$SRC/tests/services.sh" stop "$SVC" >/dev/null 2>&1 || true
		rm -rf "$SVC"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

count() {	# NAME RC LOGFILE
	local name=$1 rc=$2 log=$3 p f s
	p=$(grep -c '^PASS ' "$log" || true)
	f=$(grep -c '^FAIL ' "$log" || true)
	s=$(grep -c '^SKIP ' "$log" || true)
	grep -E '^(FAIL|SKIP) ' "$log" || true
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "FAIL $name: exited with status $rc (log: $log)"
		tail -n 15 "$log" | sed 's/^/    /'
		f=1
	fi
	echo "  $name: $p passed, $f failed, $s skipped"
	pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
}

run_one() {	# PATH
	local t=$1 name log rc
	name=${t#"$SRC/"}
	name=${name#"$B/"}
	log=$LOGDIR/$(echo "$name" | tr '/' '_').log
	if [[ $t == *.sh ]]; then
		timeout -k 10 900 bash "$t" >"$log" 2>&1
	else
		timeout -k 10 900 "$t" >"$log" 2>&1
	fi
	rc=$?
	count "$name" "$rc" "$log"
}

want() { [ -z "${ONLY:-}" ] || [[ $1 == *"$ONLY"* ]]; }

echo "== unit tests"
for t in "$B"/tests/unit/test_* tests/unit/test_*.sh; do
	[ -x "$t" ] || [[ $t == *.sh && -f $t ]] || continue
	[[ $t == *.o || $t == *.d ]] && continue
	want "$t" && run_one "$SRC/$t"
done

echo "== integration tests"
if [ -n "${BOUNCER_TEST_ENV:-}" ]; then
	set -a; . "$BOUNCER_TEST_ENV"; set +a
else
	SVC=$(mktemp -d /tmp/bouncerd-test.XXXXXX)
	if bash "$SRC/tests/services.sh" start "$SVC" >"$LOGDIR/services.log" 2>&1; then
		set -a; . "$SVC/env"; set +a
	else
		echo "FAIL services: could not start PostgreSQL/Dovecot (log: $LOGDIR/services.log)"
		tail -n 20 "$LOGDIR/services.log" | sed 's/^/    /'
		fail=$((fail + 1))
	fi
fi
for t in "$B"/tests/integration/test_* tests/integration/test_*.sh; do
	[ -x "$t" ] || [[ $t == *.sh && -f $t ]] || continue
	[[ $t == *.o || $t == *.d ]] && continue
	want "$t" && run_one "$SRC/$t"
done

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
