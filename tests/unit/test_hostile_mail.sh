#!/usr/bin/env bash
# test_hostile_mail.sh - bounce-parse on mail built to exhaust the MIME
# parser: a header folded into 900,000 lines, 450,000 header fields,
# 200,000 MIME parts, a part header folded a million times, a 4 MB single
# line.  Each is generated here; each must decode (the bounce's recipient
# found where there is one) in under 48 MB peak RSS (a sanitizer build only
# has to decode them: its shadow memory makes the figure meaningless).
set -uo pipefail
SRC=${BOUNCER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BOUNCER_BUILD:-$SRC/build}
BP=$BUILD/bin/bounce-parse
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FAILS=0
LIMIT=48
if nm -D "$BP" 2>/dev/null | grep -q __asan_init || ldd "$BP" 2>/dev/null | grep -q libasan; then
	LIMIT=100000
fi

gen() {	# KIND FILE
	python3 - "$1" "$2" <<'PY'
import sys
kind, path = sys.argv[1], sys.argv[2]
head = ("From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n")
reason = ("<hostile@example.org>: host mx.example.org[192.0.2.1] said: 550 "
          "5.1.1 User unknown (in reply to RCPT TO command)\r\n")
with open(path, "w", newline="") as f:
    if kind == "folded-subject":
        f.write("From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.com\r\n"
                "Subject: Undelivered Mail\r\n" + " x\r\n" * 900000)
        f.write("Content-Type: text/plain\r\n\r\n" + reason)
    elif kind == "field-flood":
        f.write(head + "X-F: 1\r\n" * 450000)
        f.write("Content-Type: text/plain\r\n\r\n" + reason)
    elif kind == "part-flood":
        f.write(head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
                "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + reason)
        f.write("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 200000)
        f.write("--b--\r\n")
    elif kind == "folded-part-header":
        f.write(head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
                "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + reason)
        f.write("--b\r\nContent-Type: text/plain;\r\n" + " x=y;\r\n" * 1000000)
        f.write("\r\nx\r\n--b--\r\n")
    elif kind == "long-line":
        f.write(head + "Content-Type: text/plain\r\n\r\n" + reason)
        f.write("z" * 4000000 + "\r\n")
PY
}

for kind in folded-subject field-flood part-flood folded-part-header long-line; do
	f=$TMP/$kind.eml
	gen "$kind" "$f"
	out=$(python3 - "$BP" "$f" <<'PY'
import resource, subprocess, sys
p = subprocess.run([sys.argv[1], "--format", "tsv", sys.argv[2]],
                   capture_output=True, text=True)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
rcpt = [l.split("\t")[1] for l in p.stdout.splitlines()[1:]]
print(p.returncode, rss, ",".join(rcpt) or "-")
PY
)
	read -r rc rss rcpt <<<"$out"
	size=$(($(stat -c %s "$f") / 1048576))
	if [ "$rc" = 0 ] && [ "$rss" -lt "$LIMIT" ] && [ "$rcpt" = "hostile@example.org" ]; then
		echo "PASS hostile mail $kind (${size} MB): ${rss} MB peak RSS, recipient found"
	else
		echo "FAIL hostile mail $kind (${size} MB): exit $rc, ${rss} MB peak RSS (limit $LIMIT), recipients '$rcpt'"
		FAILS=$((FAILS + 1))
	fi
done
[ "$FAILS" = 0 ]
