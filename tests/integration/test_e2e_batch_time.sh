#!/usr/bin/env bash
# test_e2e_batch_time.sh - on a slow server a batch is not held until it
# is full: it goes to the database about 2 s after its first message was
# read, so what was read is committed and DELEd while the pass goes on,
# and a pass that dies later leaves less to fetch again.  A stateful
# scripted server (tests/helpers/fakepop3.py --maildrop) answers each RETR
# after 0.7 s, without PIPELINING so the transcript is in order; the
# PostgreSQL is the real one.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services batch_time
command -v python3 >/dev/null || { skip batch_time "python3 missing"; exit 0; }
fresh_db batch_time

DROP=$TMP/maildrop
mkdir -p "$DROP"
for i in $(seq 1 12); do
	sed "s/@ID@/bt$i/g" "$FIX/dsn-hard.eml" | sed 's/$/\r/' >"$DROP/$(printf %04d "$i").eml"
done
python3 "$SRC/tests/helpers/fakepop3.py" --maildrop "$DROP" --capa USER,UIDL,TOP \
    --retr-delay 0.7 --password pw-bt --transcript "$TMP/transcript" --port-file "$TMP/port" \
    --timeout 120 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
cat >"$TMP/c.yaml" <<YAML
database:
  url: "$DB"
  batch_size: 50
defaults:
  interval: 10m
  jitter: 0s
  connect_timeout: 5s
  command_timeout: 10s
mailboxes:
  - name: slow
    host: 127.0.0.1
    port: $(cat "$TMP/port")
    tls: none
    username: u
    password: "pw-bt"
YAML
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
check "batch_time: the pass succeeds" 0 $?
first_dele=$(grep -n '^C: DELE' "$TMP/transcript" | head -n 1 | cut -d: -f1)
last_retr=$(grep -n '^C: RETR' "$TMP/transcript" | tail -n 1 | cut -d: -f1)
check "batch_time: the first DELE comes before the last RETR" 1 \
    "$([ -n "$first_dele" ] && [ -n "$last_retr" ] && [ "$first_dele" -lt "$last_retr" ] && echo 1 || echo "dele at ${first_dele:-none}, last retr at ${last_retr:-none}")"
check "batch_time: 12 RETR, 12 DELE, then QUIT" "12|12|QUIT" \
    "$(grep -c '^C: RETR' "$TMP/transcript")|$(grep -c '^C: DELE' "$TMP/transcript")|$(grep '^C: ' "$TMP/transcript" | tail -n 1 | sed 's/^C: //')"
check "batch_time: every message recorded once" "12|12" \
    "$(sql "SELECT count(*), count(DISTINCT uidl) FROM messages WHERE outcome = 'recorded'")"
check "batch_time: mailbox emptied" 0 "$(ls "$DROP" | wc -l)"
[ "$FAILS" -eq 0 ]
