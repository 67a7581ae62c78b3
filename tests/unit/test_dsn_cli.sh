#!/usr/bin/env bash
# test_dsn_cli.sh - bounce-parse as a command: TSV header and columns, JSON
# lines, exit statuses, unreadable files, size cap, options.
set -uo pipefail
SRC=${BOUNCER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BOUNCER_BUILD:-$SRC/build}
BP=$BUILD/bin/bounce-parse
FX=$SRC/tests/fixtures/dsn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; rc=1; }
if [ ! -x "$BP" ]; then
	echo "FAIL cli_built: $BP missing"
	exit 1
fi

# TSV: header line, one row per recipient, file = basename
"$BP" --format tsv "$FX/qmail-multi.eml" "$FX/not-bounce-human.eml" >"$tmp/out" 2>"$tmp/err"
st=$?
hdr=$(head -n 1 "$tmp/out" | cut -f1-8)
want=$'file\trecipient\treason\thard_or_soft\tstatus\treply_code\taction\tdiagnostic'
[ "$st" = 0 ] && pass cli_tsv_exit || fail cli_tsv_exit "status $st"
[ "$hdr" = "$want" ] && pass cli_tsv_header || fail cli_tsv_header "got '$hdr'"
rows=$(tail -n +2 "$tmp/out" | cut -f1,2,5,7 | tr '\t' ' ')
want_rows=$'qmail-multi.eml fred@example.org 5.1.1 failed\nqmail-multi.eml gina@example.net 5.4.6 failed'
[ "$rows" = "$want_rows" ] && pass cli_tsv_rows || fail cli_tsv_rows "got '$rows'"
# every row has the same number of columns as the header (no stray tabs)
ncols=$(awk -F'\t' '{print NF}' "$tmp/out" | sort -u | wc -l)
[ "$ncols" = 1 ] && pass cli_tsv_columns || fail cli_tsv_columns "rows differ in width"
hs=$(tail -n +2 "$tmp/out" | cut -f4 | sort -u | tr '\n' ' ')
case "$hs" in
	"hard "|"soft "|"hard soft "|"none ") pass cli_tsv_hard_or_soft ;;
	*) fail cli_tsv_hard_or_soft "got '$hs'" ;;
esac

# an unreadable file: clear error naming it, exit 1, the others still printed
"$BP" "$FX/yahoo.eml" "$tmp/does-not-exist.eml" >"$tmp/out" 2>"$tmp/err"
st=$?
[ "$st" = 1 ] && pass cli_missing_exit || fail cli_missing_exit "status $st"
grep -q "does-not-exist.eml: No such file or directory" "$tmp/err" &&
	pass cli_missing_message || fail cli_missing_message "$(cat "$tmp/err")"
grep -q $'^yahoo.eml\tnoah@example.ed.jp\t' "$tmp/out" &&
	pass cli_missing_others || fail cli_missing_others "yahoo row missing"

# non-bounces and empty files: exit 0, no rows
"$BP" "$FX/empty.eml" "$FX/binary-junk.eml" "$FX/not-bounce-shipping.eml" >"$tmp/out" 2>&1
st=$?
[ "$st" = 0 ] && [ "$(wc -l <"$tmp/out")" = 1 ] && pass cli_non_bounce ||
	fail cli_non_bounce "status $st, $(wc -l <"$tmp/out") lines"

# usage errors
"$BP" >/dev/null 2>&1; st=$?
[ "$st" = 2 ] && pass cli_usage_no_files || fail cli_usage_no_files "status $st"
"$BP" --format xml "$FX/yahoo.eml" >/dev/null 2>&1; st=$?
[ "$st" = 2 ] && pass cli_usage_format || fail cli_usage_format "status $st"

# JSON: one valid object per recipient with every field
"$BP" --format json --header X-Campaign-Id --header X-Subscriber-Id \
	"$FX/rfc3464-postfix-userunknown.eml" "$FX/arf-multi.eml" >"$tmp/json"
if command -v python3 >/dev/null; then
	if out=$(python3 - "$tmp/json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8')]
assert len(rows) == 4, len(rows)
keys = {'file', 'kind', 'recipient', 'recipient_source', 'final_recipient',
        'original_recipient', 'action', 'status', 'reply_code', 'diagnostic',
        'remote_mta', 'date', 'feedback_type', 'smtp_command', 'reason', 'class',
        'hard_or_soft', 'reporting_mta', 'mta', 'report_date', 'truncated',
        'verp_recipient', 'original_headers'}
for r in rows:
    assert keys <= set(r), keys - set(r)
a = rows[0]
assert a['recipient'] == 'alice@example.org' and a['status'] == '5.1.1'
assert a['reply_code'] == 550 and a['date'] == 1740824100
assert a['original_headers']['X-Campaign-Id'] == 'spring-2025'
assert a['original_headers']['Message-ID'] == '<20250301101500.A1@news.sender.example>'
assert [r['final_recipient'] for r in rows[1:]] == ['uma@isp.example', 'victor@isp.example', 'wendy@isp.example']
assert all(r['kind'] == 'complaint' and r['feedback_type'] == 'abuse' for r in rows[1:])
PY
	); then pass cli_json; else fail cli_json "$out"; fi
else
	echo "SKIP cli_json: python3 not available"
fi

# --max-size: the head is decoded and the record says truncated
"$BP" --format json --max-size 1200 "$FX/truncated-attachment.eml" >"$tmp/json"
grep -q '"truncated":true' "$tmp/json" && grep -q '"final_recipient":"oscar@example.org"' "$tmp/json" &&
	pass cli_max_size || fail cli_max_size "$(head -c 300 "$tmp/json")"

# --verp decodes the recipient from the bounce address
"$BP" --format json --verp 'bounces+{local}={domain}@news.sender.example' "$FX/verp-only.eml" >"$tmp/json"
grep -q '"recipient":"zoe@example.org","recipient_source":"verp"' "$tmp/json" &&
	pass cli_verp || fail cli_verp "$(head -c 300 "$tmp/json")"
exit $rc
