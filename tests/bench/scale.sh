#!/usr/bin/env bash
# scale.sh BUILD_DIR - runs BUILD_DIR/tests/bench/scale (ROWS rows, default
# 10,000,000) against a throwaway PostgreSQL, or against the services of
# BOUNCER_TEST_ENV=DIR/env when set.  Prints the "scale:" line, ending with
# the server's shared_buffers and huge_pages.  The throwaway server gets
# PG_SHARED_BUFFERS (default 2GB, what ten million rows want) and, unless
# PG_HUGE_PAGES=0, huge pages reserved for it (tests/services.sh): a server
# of that size on 4 kB pages spends much of a new connection's work in page
# faults.
set -uo pipefail
B=${1:-build}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
cd "$SRC"
if [ -n "${BOUNCER_TEST_ENV:-}" ]; then
	set -a; . "$BOUNCER_TEST_ENV"; set +a
else
	export PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-2GB}
	export PG_HUGE_PAGES=${PG_HUGE_PAGES:-1}
	SVC=$(mktemp -d /tmp/bouncerd-scale.XXXXXX)
	trap 'bash tests/services.sh stop "$SVC" >/dev/null 2>&1; rm -rf "$SVC"' EXIT
	bash tests/services.sh start "$SVC" >/dev/null 2>&1 ||
	    { echo "bench-scale: services failed to start"; exit 1; }
	set -a; . "$SVC/env"; set +a
fi
SB=$(psql "$BOUNCER_TEST_PG" -XAtqc "SHOW shared_buffers" 2>/dev/null) || SB=unknown
HP=$(psql "$BOUNCER_TEST_PG" -XAtqc "SHOW huge_pages" 2>/dev/null) || HP=unknown
"$B/tests/bench/scale" | sed "s/^scale: rows=.*/& shared_buffers=$SB huge_pages=$HP/"
