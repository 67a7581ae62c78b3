#!/usr/bin/env bash
# test_e2e_dup_uidl.sh - a server that gives several messages one UIDL
# (popa3d derives it from the header block; a stateful scripted server,
# tests/helpers/fakepop3.py --maildrop --uidl header, does the same; the
# PostgreSQL is the real one).  Such messages are keyed by UIDL and
# content, the rest of the mailbox goes on, and every message is recorded
# exactly once across a pass cut short by max_messages, a pass killed
# with SIGKILL after its first DELEs, and the passes after it.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services dup_uidl
command -v python3 >/dev/null || { skip dup_uidl "python3 missing"; exit 0; }
fresh_db dup_uidl

DROP=$TMP/maildrop
mkdir -p "$DROP"
# make FILE HEADER-ID BODY-ID: the dsn-hard fixture, the header block
# numbered HEADER-ID, the body (recipient, returned message) BODY-ID
make() {
	awk -v h="$2" -v b="$3" '
	    !body && /^\r?$/ { body = 1 }
	    { line = $0
	      if (!body) gsub(/@ID@/, h, line)
	      else { gsub(/BOUNDARY-@ID@/, "BOUNDARY-" h, line); gsub(/@ID@/, b, line) }
	      printf "%s\r\n", line }' "$FIX/dsn-hard.eml" >"$DROP/$1.eml"
}
n=0
next() { n=$((n + 1)); f=$(printf '%04d' "$n"); }
# 20 pairs: identical header blocks, different bodies (recipients)
for p in $(seq 1 20); do
	next; make "$f" "pair$p" $((100 + 2 * p))
	next; make "$f" "pair$p" $((101 + 2 * p))
	# a message of its own after every pair but the last three
	if [ "$p" -le 17 ]; then next; make "$f" "one$p" $((500 + p)); fi
done
# three byte-identical copies
for _ in 1 2 3; do next; make "$f" triple 900; done
check "dup_uidl: 60 messages seeded" 60 "$(ls "$DROP" | wc -l)"

# each RETR answered after 50 ms: the kill below lands inside a pass
python3 "$SRC/tests/helpers/fakepop3.py" --maildrop "$DROP" --uidl header \
    --retr-delay 0.05 --password pw-dup --transcript "$TMP/transcript" --port-file "$TMP/port" \
    --timeout 240 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
conf() {	# MAX_MESSAGES
	cat <<YAML
database:
  url: "$DB"
  batch_size: 10
log:
  level: info
defaults:
  interval: 10m
  jitter: 0s
  max_messages: $1
  connect_timeout: 5s
  command_timeout: 10s
mailboxes:
  - name: dup
    host: 127.0.0.1
    port: $(cat "$TMP/port")
    tls: none
    username: u
    password: "pw-dup"
YAML
}
conf 15 >"$TMP/c15.yaml"
conf 500 >"$TMP/c.yaml"

"$BIN" -c "$TMP/c15.yaml" --once 2>"$TMP/log1"
check "dup_uidl: a pass of 15 succeeds" 0 $?
check "dup_uidl: the shared UIDLs are logged at warn with the server" 1 \
    "$(grep -c ' warn server gave several messages the same UIDL.*host=127.0.0.1 messages=43' "$TMP/log1")"
check "dup_uidl: 15 recorded" 15 "$(sql "SELECT count(*) FROM messages")"
check "dup_uidl: 15 deleted" 45 "$(ls "$DROP" | wc -l)"

# A pass killed once its first batch is committed and DELEd.
: >"$TMP/log2"
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log2" &
pid=$!
PIDS+=($pid)
dele_seen() { [ "$(grep -c '^C: DELE' "$TMP/transcript")" -gt 15 ]; }
wait_for 60 dele_seen
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
recorded=$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")
check "dup_uidl: the killed pass committed a batch, not all" 1 \
    "$([ "$recorded" -gt 15 ] && [ "$recorded" -lt 60 ] && echo 1 || echo "$recorded")"
check "dup_uidl: nothing deleted without QUIT" 45 "$(ls "$DROP" | wc -l)"

"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log3"
check "dup_uidl: the pass after the kill succeeds" 0 $?
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log4"
check "dup_uidl: a last pass succeeds" 0 $?
check "dup_uidl: the last pass finds nothing" 1 "$(grep -c 'listed=0 fetched=0' "$TMP/log4")"
check "dup_uidl: mailbox emptied" 0 "$(ls "$DROP" | wc -l)"
check "dup_uidl: every message recorded once" "60|60" \
    "$(sql "SELECT count(*), count(DISTINCT uidl) FROM messages WHERE outcome = 'recorded'")"
check "dup_uidl: one bounce row per message" "60|58" \
    "$(sql "SELECT count(*), count(DISTINCT recipient) FROM bounces")"
check "dup_uidl: each recipient once, the identical triple three times" "1|3" \
    "$(sql "SELECT min(c), max(c) FROM (SELECT count(*) c FROM bounces GROUP BY recipient) x")"
check "dup_uidl: the triple keyed -2 and -3" 2 \
    "$(sql "SELECT count(*) FROM messages WHERE uidl ~ '^dup:[0-9a-f]{64}-[23]\$'")"
check "dup_uidl: no message failed" 0 "$(sql "SELECT count(*) FROM messages WHERE outcome <> 'recorded'")"
check "dup_uidl: no duplicate-UIDL error" 0 "$(cat "$TMP"/log* | grep -c 'duplicate UIDL')"
[ "$FAILS" -eq 0 ]
