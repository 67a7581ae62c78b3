#!/usr/bin/env bash
# scale.sh BUILD_DIR - runs BUILD_DIR/tests/bench/scale (ROWS rows, default
# 10,000,000) against a throwaway PostgreSQL, or against the services of
# BOUNCER_TEST_ENV=DIR/env when set.  Prints the "scale:" line, ending with
# the server's shared_buffers (PG_SHARED_BUFFERS=2GB gives the throwaway
# server 2 GB; unset, PostgreSQL's default of 128 MB).
set -uo pipefail
B=${1:-build}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
cd "$SRC"
if [ -n "${BOUNCER_TEST_ENV:-}" ]; then
	set -a; . "$BOUNCER_TEST_ENV"; set +a
else
	SVC=$(mktemp -d /tmp/bouncerd-scale.XXXXXX)
	trap 'bash tests/services.sh stop "$SVC" >/dev/null 2>&1; rm -rf "$SVC"' EXIT
	bash tests/services.sh start "$SVC" >/dev/null 2>&1 ||
	    { echo "bench-scale: services failed to start"; exit 1; }
	set -a; . "$SVC/env"; set +a
fi
SB=$(psql "$BOUNCER_TEST_PG" -XAtqc "SHOW shared_buffers" 2>/dev/null) || SB=unknown
"$B/tests/bench/scale" | sed "s/^scale: rows=.*/& shared_buffers=$SB/"
