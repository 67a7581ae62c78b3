#!/usr/bin/env bash
# run.sh BUILD_DIR - runs every benchmark (BUILD_DIR/tests/bench/bench_*
# binaries and tests/bench/bench_*.sh scripts) against throwaway services,
# printing their figures.  Benchmarks print numbers; they never fail on a
# threshold (targets are compared by reading the figures).  ONLY=SUBSTRING
# runs the matching ones; tests/bench/compare.sh sets bench_e2e and
# bench_dsn of two revisions side by side.
set -uo pipefail
B=${1:-build}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
cd "$SRC"
export BOUNCER_SRC=$SRC BOUNCER_BUILD=$SRC/$B
export BOUNCER_SHARED=${BOUNCER_SHARED:-$(readlink -m "$SRC/../shared")}
SVC=$(mktemp -d /tmp/bouncerd-bench.XXXXXX)
trap 'bash tests/services.sh stop "$SVC" >/dev/null 2>&1; rm -rf "$SVC"' EXIT
bash tests/services.sh start "$SVC" >/dev/null 2>&1 || { echo "bench: services failed to start"; exit 1; }
set -a; . "$SVC/env"; set +a
rc=0
for t in "$B"/tests/bench/bench_* tests/bench/bench_*.sh; do
	[ -f "$t" ] || continue
	[[ $t == *.o || $t == *.d ]] && continue
	[ -n "${ONLY:-}" ] && [[ $t != *"$ONLY"* ]] && continue
	echo "== $t"
	if [[ $t == *.sh ]]; then bash "$t" || rc=1; else "$t" || rc=1; fi
done
exit $rc
