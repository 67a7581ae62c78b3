#!/usr/bin/env bash
# test_store_schema.sh - the migrations compiled into bouncerd
# (internal/store/schema_sql.c) are exactly schema/NNN_*.sql, and the files are
# numbered 001, 002, ... without gaps or repeats.  Needs no services.
set -uo pipefail
SRC=${BOUNCER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if sh "$SRC/schema/embed.sh" >"$tmp" && cmp -s "$tmp" "$SRC/internal/store/schema_sql.c"; then
	echo "PASS embedded migrations match schema/*.sql"
else
	echo "FAIL embedded migrations match schema/*.sql: run 'sh schema/embed.sh > internal/store/schema_sql.c'"
fi

# Numbers increase, each used once; ranges may be left free for work
# that lands later (a database records each version it applied).
last=0 ok=1 count=0
for f in "$SRC"/schema/[0-9][0-9][0-9]_*.sql; do
	n=$((10#$(basename "$f" | cut -c1-3)))
	if [ "$n" -le "$last" ]; then
		echo "FAIL migrations numbered in order: $(basename "$f") after $(printf %03d "$last")"
		ok=0
		break
	fi
	last=$n count=$((count + 1))
done
[ "$ok" = 1 ] && echo "PASS migrations numbered in order ($count files, last $(printf %03d "$last"))"

# Each migration is applied in one transaction by the store: a file must
# not manage transactions itself.
if grep -qiE '^[[:space:]]*(BEGIN|COMMIT|ROLLBACK)[[:space:]]*;' "$SRC"/schema/[0-9][0-9][0-9]_*.sql; then
	echo "FAIL migrations leave transactions to the store"
else
	echo "PASS migrations leave transactions to the store"
fi
exit 0
