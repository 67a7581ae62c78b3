#!/usr/bin/env bash
# test_lint_includes.sh - the include-direction check of `make lint`
# (tests/lint/includes.sh): the tree as it is passes, and a copy of it with
# one include against the layers fails, naming the file and line.
set -uo pipefail
SRC=${BOUNCER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; rc=1; }

if out=$(sh "$SRC/tests/lint/includes.sh" "$SRC" 2>&1); then
	pass "the tree follows the layers"
else
	fail "the tree follows the layers" "$out"
fi

# wrong FILE INCLUDE: a copy of the tree with INCLUDE added to FILE must
# fail, naming FILE and the line
wrong() {
	local name=$1 file=$2 inc=$3 t=$tmp/$1
	mkdir -p "$t"
	cp -r "$SRC/internal" "$SRC/cmd" "$t/"
	printf '#include "%s"\n' "$inc" >>"$t/$file"
	local line
	line=$(wc -l <"$t/$file")
	if out=$(sh "$SRC/tests/lint/includes.sh" "$t" 2>&1); then
		fail "$name" "passed"
	elif printf '%s\n' "$out" | grep -q "^$file:$line: "; then
		pass "$name"
	else
		fail "$name" "$out"
	fi
}
wrong store_sees_decode internal/store/store.h decode/dsn.h
wrong store_sees_pop3 internal/store/store_int.h pop3/pop3.h
wrong pop3_sees_store internal/pop3/pop3.c store/store.h
wrong decode_sees_store internal/decode/dsn.c store/store.h
wrong decode_sees_config internal/decode/classify.c config/config.h
wrong base_sees_service internal/base/log.c service/metrics.h
wrong record_sees_base internal/record.h base/util.h
wrong config_sees_dsn internal/config/config.c decode/dsn.h
wrong no_folder internal/service/pass.c pass.h
exit $rc
