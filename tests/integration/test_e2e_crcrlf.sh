#!/usr/bin/env bash
# test_e2e_crcrlf.sh - a server that sends each CRLF of a stored message
# as CR CR LF (Courier and GNU Mailutils do; a stateful scripted server,
# tests/helpers/fakepop3.py --maildrop --eol crcrlf, does the same; the
# PostgreSQL is the real one): the bounces decode to the same records as
# from a server that sends CRLF, the raw bytes kept are the ones received,
# and a message that looks like a bounce but yields no recipient is
# logged at info with its UIDL.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services crcrlf
command -v python3 >/dev/null || { skip crcrlf "python3 missing"; exit 0; }

seed_drop() {	# DIR
	local k i=0
	mkdir -p "$1"
	for k in dsn-hard dsn-multi arf autoreply plain; do
		i=$((i + 1))
		sed -e "s/@ID@/$i/g" -e 's/\r$//' -e 's/$/\r/' "$FIX/$k.eml" >"$1/m$i.eml"
	done
	# a bounce by its sender and subject, with nothing to decode
	printf '%s\r\n' "From: MAILER-DAEMON@mx.example.net" \
	    "To: bounces@example.com" "Subject: Undelivered Mail Returned to Sender" \
	    "Message-ID: <odd-1@mx.example.net>" "" "Something went wrong." >"$1/m6.eml"
}

run_server() {	# DIR EOL -> records of one pass, one line per bounce row
	local drop=$1 eol=$2
	fresh_db "crcrlf_$eol"
	rm -f "$TMP/port"
	python3 "$SRC/tests/helpers/fakepop3.py" --maildrop "$drop" --eol "$eol" \
	    --password pw-eol --transcript "$TMP/transcript-$eol" \
	    --port-file "$TMP/port" --timeout 60 &
	PIDS+=($!)
	for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
	cat >"$TMP/c-$eol.yaml" <<YAML
database:
  url: "$DB"
log:
  level: info
defaults:
  interval: 10m
  jitter: 0s
  connect_timeout: 5s
  command_timeout: 10s
mailboxes:
  - name: eol
    host: 127.0.0.1
    port: $(cat "$TMP/port")
    tls: none
    username: u
    password: "pw-eol"
    after_processing: keep
YAML
	"$BIN" -c "$TMP/c-$eol.yaml" --once 2>"$TMP/log-$eol"
	check "crcrlf: $eol pass exit status" 0 $?
	sql "SELECT m.kind, x.recipient, x.class, x.reason FROM messages m
	    LEFT JOIN bounces x ON x.message_id = m.id ORDER BY 2, 1" >"$TMP/rows-$eol"
	sql "SELECT uidl, md5(raw) FROM messages WHERE raw IS NOT NULL ORDER BY 1" >"$TMP/raw-$eol"
	psql "$BOUNCER_TEST_PG_ADMIN" -qAt -c "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null 2>&1
	DBNAME=""
}

seed_drop "$TMP/a"
seed_drop "$TMP/b"
run_server "$TMP/a" crlf
run_server "$TMP/b" crcrlf
check "crcrlf: 6 messages, 7 rows" 7 "$(grep -c . "$TMP/rows-crlf")"
check "crcrlf: CR CR LF gives the same records as CRLF" \
    "$(cat "$TMP/rows-crlf")" "$(cat "$TMP/rows-crcrlf")"
check "crcrlf: the bounces decoded" 5 "$(grep -c '@example.org|' "$TMP/rows-crcrlf")"
want=$(python3 -c "
import hashlib,sys
d=open(sys.argv[1],'rb').read().replace(b'\r\n',b'\r\r\n')
print('m5|' + hashlib.md5(d).hexdigest())" "$TMP/a/m5.eml")
check "crcrlf: raw bytes kept as received" "$want" "$(grep '^m5|' "$TMP/raw-crcrlf")"
check "crcrlf: the odd bounce is logged at info with its UIDL" 1 \
    "$(grep -c ' info looks like a bounce, but no recipient was decoded.*uidl=m6 why="from a mailer daemon"' "$TMP/log-crcrlf")"
check "crcrlf: plain mail is not" 0 "$(grep -c 'looks like a bounce.*uidl=m5' "$TMP/log-crcrlf")"
[ "$FAILS" -eq 0 ]
