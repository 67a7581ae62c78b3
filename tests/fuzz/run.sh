#!/usr/bin/env bash
# run.sh SECONDS [NAME] - builds each tests/fuzz/fuzz_NAME.c with clang's
# libFuzzer + ASan + UBSan against the project's sources and runs it for
# SECONDS.  Seeds: tests/fuzz/seeds_NAME/ and tests/fixtures/NAME/ if they
# exist; the working corpus lives in build-fuzz/corpus_NAME/.
# Exit status: non-zero when a target crashed, leaked or reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-600}
ONLY=${2:-}
OUT=build-fuzz
PKGS="libcurl libpq yaml-0.1 gmime-3.0"
FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Iinternal -Itests -DBOUNCERD_VERSION=\"fuzz\" $(pkg-config --cflags $PKGS)"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
mkdir -p "$OUT/obj"
objs=()
for c in internal/*.c internal/*/*.c; do
	o=$OUT/obj/$(basename "${c%.c}").o
	if [ ! -f "$o" ] || [ "$c" -nt "$o" ] || [ -n "$(find internal -name '*.h' -newer "$o")" ]; then
		clang $FLAGS $SAN -fsanitize=fuzzer-no-link -c -o "$o" "$c"
	fi
	objs+=("$o")
done
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
rc=0
for src in tests/fuzz/fuzz_*.c; do
	[ -f "$src" ] || continue
	name=$(basename "${src%.c}")
	name=${name#fuzz_}
	[ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || continue
	clang $FLAGS $SAN -fsanitize=fuzzer -o "$OUT/fuzz_$name" "$src" "${objs[@]}" \
	    $(pkg-config --libs $PKGS) -lpthread -lm
	corpus=$OUT/corpus_$name
	mkdir -p "$corpus"
	seeds=()
	for s in "tests/fuzz/seeds_$name" "tests/fixtures/$name"; do
		[ -d "$s" ] && seeds+=("$s")
	done
	echo "fuzz_$name: running for ${SECS}s (seeds: ${seeds[*]:-none})"
	if ! "$OUT/fuzz_$name" -max_total_time="$SECS" -max_len=262144 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/crash_${name}_" \
	    "$corpus" "${seeds[@]}" >"$OUT/fuzz_$name.log" 2>&1; then
		echo "fuzz_$name: FAILED (see $OUT/fuzz_$name.log)"
		tail -n 40 "$OUT/fuzz_$name.log"
		rc=1
	else
		grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$OUT/fuzz_$name.log" | sed "s/^/fuzz_$name: /"
		echo "fuzz_$name: clean"
	fi
done
exit $rc
