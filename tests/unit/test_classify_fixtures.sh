#!/usr/bin/env bash
# test_classify_fixtures.sh - the classifier against fixtures written from
# the documentation (tests/fixtures/classify): for every row of expected.tsv
# the recipient must be found and get the expected reason and hard/soft;
# a non-bounce (recipient "-") must give no recipient at all.  Also checks
# the fixture set itself: every reason has at least three rows, every
# PROVIDERS.md section 3..44a is covered (sections.txt), every file is
# listed, exists and is under 20 KB.
#
# One PASS/FAIL line per expected row, then the coverage checks, then a
# plain summary line "classify fixtures: N/M rows correct".
set -uo pipefail
SRC=${BOUNCER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BOUNCER_BUILD:-$SRC/build}
BP=$BUILD/bin/bounce-parse
FX=$SRC/tests/fixtures/classify
EXP=$FX/expected.tsv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; rc=1; }

if [ ! -f "$EXP" ]; then
	fail classify_expected "$EXP missing"
	exit 1
fi
if [ ! -x "$BP" ]; then
	fail classify_built "$BP missing"
	exit 1
fi

# The reason names of REASONS.md's table (all 36 of them).
REASONS="authfailure badreputation blocked contenterror delivered exceedlimit
expired failedstarttls feedback filtered hasmoved hostunknown mailboxfull
mailererror mesgtoobig networkerror norelaying notaccept notcompliantrfc onhold
policyviolation rejected requireptr securityerror spamdetected speeding
suppressed suspend syntaxerror systemerror systemfull toomanyconn undefined
userunknown vacation virusdetected"
# PROVIDERS.md sections that need a fixture of their own (1, 2 and 44b are
# covered by the per-reason fixtures).
SECTIONS="3 4 5 6 7 8 9 10 11 12 13 14 15 16 16a 17 18 19 19a 20 21 22 23 24
25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 44a"

# ---------------------------------------------------------------- run
(cd "$FX" && ls -- *.eml) | LC_ALL=C sort >"$tmp/files"
(cd "$FX" && xargs "$BP" --format tsv <"$tmp/files") >"$tmp/out" 2>"$tmp/err"
st=$?
[ "$st" = 0 ] && pass classify_parse_exit ||
	fail classify_parse_exit "bounce-parse exited $st: $(head -c 300 "$tmp/err")"

# ---------------------------------------------------------------- compare
# awk prints one line per check: "PASS name" / "FAIL name: why", then
# "ROWS correct total" at the end.
awk -F'\t' -v OUT="$tmp/out" '
function lc(s) { return tolower(s) }
BEGIN {
	# read bounce-parse output, columns found by header name
	n = 0
	while ((getline line < OUT) > 0) {
		nf = split(line, f, "\t")
		if (n == 0) {
			for (i = 1; i <= nf; i++) col[f[i]] = i
			n = 1
			continue
		}
		file = f[col["file"]]
		k = ++cnt[file]
		orc[file, k] = lc(f[col["recipient"]])
		obr[file, k] = ("best_recipient" in col) ? lc(f[col["best_recipient"]]) : ""
		ors[file, k] = f[col["reason"]]
		ohs[file, k] = f[col["hard_or_soft"]]
	}
}
NR == 1 { next }
{
	file = $1; rcpt = lc($2); reason = $3; hs = $4
	total++
	if (rcpt == "-") {
		if (cnt[file] + 0 == 0) {
			print "PASS classify/" file "/no-recipient"; correct++
		} else {
			got = ""
			for (k = 1; k <= cnt[file]; k++) got = got " " orc[file, k] "(" ors[file, k] ")"
			print "FAIL classify/" file "/no-recipient: not a bounce, got recipient(s)" got
		}
		next
	}
	expected[file, rcpt] = 1
	hit = 0
	for (k = 1; k <= cnt[file]; k++)
		if (orc[file, k] == rcpt || obr[file, k] == rcpt) { hit = k; break }
	if (!hit) {
		got = ""
		for (k = 1; k <= cnt[file]; k++) got = got " " orc[file, k]
		if (got == "") got = " none"
		print "FAIL classify/" file "/" rcpt ": recipient not found (expected " reason "/" hs ", rows:" got ")"
		next
	}
	seen[file, hit] = 1
	if (ors[file, hit] == reason && ohs[file, hit] == hs) {
		print "PASS classify/" file "/" rcpt; correct++
	} else {
		print "FAIL classify/" file "/" rcpt ": expected " reason "/" hs " got " ors[file, hit] "/" ohs[file, hit]
	}
	bounce[file] = 1
}
END {
	# a row for a recipient the fixture does not name (the report itself,
	# postmaster, MAILER-DAEMON, ...) is wrong as well
	for (file in bounce)
		for (k = 1; k <= cnt[file]; k++)
			if (!seen[file, k] && !expected[file, orc[file, k]] && !expected[file, obr[file, k]])
				print "FAIL classify/" file "/extra: unexpected recipient " orc[file, k] " (" ors[file, k] ")"
	print "ROWS " correct + 0 " " total + 0
}' "$EXP" >"$tmp/checks"
grep -v '^ROWS ' "$tmp/checks"
grep -q '^FAIL ' "$tmp/checks" && rc=1
read -r _ correct total < <(grep '^ROWS ' "$tmp/checks")

# ---------------------------------------------------------------- fixture set
# every reason of REASONS.md has at least 3 rows; no unknown reason names
short=""
for r in $REASONS; do
	c=$(awk -F'\t' -v r="$r" 'NR > 1 && $3 == r' "$EXP" | wc -l)
	[ "$c" -ge 3 ] || short="$short $r($c)"
done
[ -z "$short" ] && pass classify_coverage_reasons ||
	fail classify_coverage_reasons "fewer than 3 rows:$short"
unknown=$(awk -F'\t' 'NR > 1 { print $3 }' "$EXP" | sort -u |
	grep -vxF -f <(printf '%s\n' $REASONS -) | tr '\n' ' ')
[ -z "$unknown" ] && pass classify_reason_names || fail classify_reason_names "unknown reason(s): $unknown"
badhs=$(awk -F'\t' 'NR > 1 && $4 !~ /^(hard|soft|none|-)$/ { print $1 }' "$EXP" | tr '\n' ' ')
[ -z "$badhs" ] && pass classify_hard_or_soft_values || fail classify_hard_or_soft_values "bad value in: $badhs"

# PROVIDERS.md sections 3..44a each have a fixture, and the files exist
missing="" nofile=""
for s in $SECTIONS; do
	grep -q "^§$s " "$FX/sections.txt" || missing="$missing §$s"
done
while read -r sec file; do
	case "$sec" in "#"* | "") continue ;; esac
	[ -f "$FX/$file" ] || nofile="$nofile $sec:$file"
done <"$FX/sections.txt"
[ -z "$missing" ] && pass classify_coverage_sections || fail classify_coverage_sections "no fixture for$missing"
[ -z "$nofile" ] && pass classify_sections_files || fail classify_sections_files "missing file(s):$nofile"

# every fixture is listed in expected.tsv, every listed file exists, < 20 KB
unlisted="" absent="" big=""
while read -r f; do
	grep -q "^$f	" "$EXP" || unlisted="$unlisted $f"
	[ "$(wc -c <"$FX/$f")" -lt 20480 ] || big="$big $f"
done <"$tmp/files"
for f in $(awk -F'\t' 'NR > 1 { print $1 }' "$EXP" | sort -u); do
	[ -f "$FX/$f" ] || absent="$absent $f"
done
[ -z "$unlisted" ] && pass classify_files_listed || fail classify_files_listed "not in expected.tsv:$unlisted"
[ -z "$absent" ] && pass classify_listed_files_exist || fail classify_listed_files_exist "missing:$absent"
[ -z "$big" ] && pass classify_files_size || fail classify_files_size "20 KB or more:$big"

echo "classify fixtures: $correct/$total rows correct"
exit $rc
