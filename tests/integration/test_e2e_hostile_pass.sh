#!/usr/bin/env bash
# test_e2e_hostile_pass.sh - one pass over a Dovecot mailbox holding ten
# hostile emails (headers folded a million times, field and part floods,
# a 4 MB line) and ten real bounces, with bouncerd held to 256 MiB of
# memory (a memory cgroup when this machine lets root make one, else
# prlimit --as): all twenty are recorded, the mailbox is emptied, and the
# pass exits 0.  A sanitizer build is skipped: its shadow memory alone
# passes any such limit.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services hostile_pass
command -v python3 >/dev/null || { skip hostile_pass "python3 missing"; exit 0; }
if nm -D "$BIN" 2>/dev/null | grep -q __asan_init || ldd "$BIN" 2>/dev/null | grep -q libasan; then
	skip hostile_pass "sanitizer build: a memory limit says nothing"
	exit 0
fi
fresh_db hostile_pass
U=$(pop_user 2)
clear_mailbox "$U"
md=$(maildir "$U")

drop() {	# FILE NAME -> into the Maildir
	cp "$1" "$md/tmp/$2"
	chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$md/tmp/$2"
	mv "$md/tmp/$2" "$md/new/$2"
}

python3 - "$TMP" <<'PY'
import sys
out = sys.argv[1]
head = ("From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n")
reason = ("<hostile@example.org>: host mx.example.org[192.0.2.1] said: 550 "
          "5.1.1 User unknown (in reply to RCPT TO command)\r\n")
kinds = {
    "folded-subject": lambda: (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@example.com\r\n"
        "Subject: Undelivered Mail\r\n" + " x\r\n" * 900000 +
        "Content-Type: text/plain\r\n\r\n" + reason),
    "field-flood": lambda: (head + "X-F: 1\r\n" * 450000 +
                            "Content-Type: text/plain\r\n\r\n" + reason),
    "part-flood": lambda: (
        head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
        "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + reason +
        "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 150000 + "--b--\r\n"),
    "folded-part-header": lambda: (
        head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; "
        "boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" + reason +
        "--b\r\nContent-Type: text/plain;\r\n" + " x=y;\r\n" * 600000 +
        "\r\nx\r\n--b--\r\n"),
    "long-line": lambda: (head + "Content-Type: text/plain\r\n\r\n" + reason +
                          "z" * 4000000 + "\r\n"),
}
for i, (k, gen) in enumerate(sorted(kinds.items())):
    body = gen()
    for j in (1, 2):
        with open("%s/hostile-%s-%d.eml" % (out, k, j), "w", newline="") as f:
            f.write("Message-ID: <hostile-%s-%d@example.net>\r\n" % (k, j))
            f.write(body)
PY
n=0
for f in "$TMP"/hostile-*.eml; do n=$((n + 1)); drop "$f" "h$n.eml"; done
check "ten hostile emails made" 10 "$n"

# ten real bounces: the shared corpus when it is there, else our fixtures
real=()
if [ -d "${BOUNCER_SHARED:-}/corpus/eml" ]; then
	mapfile -t real < <(find "$BOUNCER_SHARED/corpus/eml" -name '*.eml' | sort | head -n 10)
	echo "# real bounces from the shared corpus"
fi
if [ "${#real[@]}" -lt 10 ]; then
	mapfile -t real < <(find "$SRC/tests/fixtures/dsn" -name '*.eml' | sort | head -n 10)
	echo "# real bounces from tests/fixtures/dsn"
fi
n=0
for f in "${real[@]}"; do n=$((n + 1)); drop "$f" "r$n.eml"; done
check "ten real bounces seeded" 10 "$n"
check "twenty in the mailbox" 20 "$(mail_count "$U")"

write_config "$TMP/c.yaml" "" 1 10m 2:delete
"$BIN" -c "$TMP/c.yaml" --migrate 2>>"$TMP/log" || fail "migrate" "exit $?"

LIMIT=$((256 << 20))
cg=""
for base in /sys/fs/cgroup/unified /sys/fs/cgroup /sys/fs/cgroup/memory; do
	d=$base/bouncerd-test-$$
	if [ -f "$base/memory.max" ] || grep -qw memory "$base/cgroup.subtree_control" 2>/dev/null; then
		mkdir "$d" 2>/dev/null && echo "$LIMIT" >"$d/memory.max" 2>/dev/null &&
			echo 0 >"$d/memory.swap.max" 2>/dev/null; true
	elif [ -f "$base/memory.limit_in_bytes" ]; then
		mkdir "$d" 2>/dev/null && echo "$LIMIT" >"$d/memory.limit_in_bytes" 2>/dev/null
	fi
	if [ -d "$d" ] && { [ "$(cat "$d/memory.max" 2>/dev/null)" = "$LIMIT" ] ||
	    [ "$(cat "$d/memory.limit_in_bytes" 2>/dev/null)" = "$LIMIT" ]; }; then
		cg=$d
		break
	fi
	rmdir "$d" 2>/dev/null
done
if [ -n "$cg" ]; then
	echo "# held to 256 MiB by the memory cgroup $cg"
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
	    /usr/bin/time -f '%M' -o "$TMP/rss" "$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
	rc=$?
	oom=$(grep -hE '^(oom_kill|under_oom) ' "$cg/memory.events" "$cg/memory.oom_control" 2>/dev/null | paste -sd' ')
	rmdir "$cg" 2>/dev/null
else
	echo "# held to 256 MiB of address space by prlimit --as"
	MALLOC_ARENA_MAX=2 prlimit --as="$LIMIT" /usr/bin/time -f '%M' -o "$TMP/rss" \
	    "$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
	rc=$?
	oom=""
fi
check "the pass exits 0 under 256 MiB" 0 "$rc"
echo "# peak RSS $(($(tail -n 1 "$TMP/rss" 2>/dev/null || echo 0) / 1024)) MB ${oom:+($oom)}"
check "all twenty recorded" 20 \
    "$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")"
check "the hostile ones' recipient found" 10 \
    "$(sql "SELECT count(DISTINCT m.id) FROM bounces b JOIN messages m ON m.id = b.message_id WHERE b.recipient = 'hostile@example.org'")"
check "the mailbox emptied" 0 "$(mail_count "$U")"
[ "$FAILS" = 0 ]
