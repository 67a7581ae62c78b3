#!/usr/bin/env bash
# test_e2e_no_uidl.sh - a server without UIDL (Dovecot always has it, so a
# scripted server plays one; its PostgreSQL is the real one): bouncerd
# ends that session, opens a new one, keys each message by its header
# block (LIST + TOP n 0), records and deletes them, and two messages with
# the same header block are both kept apart ("-2").
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services no_uidl
command -v python3 >/dev/null || { skip no_uidl "python3 missing"; exit 0; }
fresh_db no_uidl

# message N of the script: the dsn-hard fixture with Message-ID number ID
msg() { sed "s/@ID@/$1/g" "$FIX/dsn-hard.eml"; }
lines() {	# FILE -> script lines sending it (dot-stuffed), then "."
	sed -e 's/\r$//' -e 's/^\./../' -e 's/^/< /' -e 's/^< $/</' "$1"
	echo "< ."
}
msg 1 >"$TMP/m1"
msg 2 >"$TMP/m2"
cp "$TMP/m2" "$TMP/m3"	# the same header block as message 2
for i in 1 2 3; do
	sed '/^\r\{0,1\}$/q' "$TMP/m$i" >"$TMP/h$i"	# header block + empty line
done
login() {
	echo "< +OK fake ready"
	echo "> CAPA"
	echo "< +OK"
	echo "< USER"
	echo "< TOP"
	echo "< ."
	echo "> USER u"
	echo "< +OK"
	echo "> PASS pw-no-uidl"
	echo "< +OK logged in"
	echo "> NOOP"
	echo "< +OK"
}
{
	login
	echo "> STAT"
	echo "< +OK 3 $(cat "$TMP/m1" "$TMP/m2" "$TMP/m3" | wc -c)"
	echo "> UIDL"
	echo "< -ERR command not supported"
	echo "> QUIT"
	echo "< +OK"
	echo "! next"
	login
	echo "> LIST"
	echo "< +OK 3 messages"
	for i in 1 2 3; do echo "< $i $(wc -c <"$TMP/m$i")"; done
	echo "< ."
	for i in 1 2 3; do
		echo "> TOP $i 0"
		echo "< +OK"
		lines "$TMP/h$i"
	done
	for i in 1 2 3; do
		echo "> RETR $i"
		echo "< +OK"
		lines "$TMP/m$i"
	done
	for i in 1 2 3; do
		echo "> DELE $i"
		echo "< +OK"
	done
	echo "> QUIT"
	echo "< +OK bye"
} >"$TMP/script"
python3 "$SRC/tests/helpers/fakepop3.py" --script "$TMP/script" \
    --transcript "$TMP/transcript" --port-file "$TMP/port" --timeout 60 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
cat >"$TMP/c.yaml" <<YAML
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
  - name: nouidl
    host: 127.0.0.1
    port: $(cat "$TMP/port")
    tls: none
    username: u
    password: "pw-no-uidl"
    after_processing: delete
YAML
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
check "no_uidl: --once exit status" 0 $?
for _ in $(seq 50); do grep -q EOF "$TMP/transcript" 2>/dev/null && [ "$(grep -c EOF "$TMP/transcript")" -ge 2 ] && break; sleep 0.1; done
check "no_uidl: no script mismatch" "" "$(grep MISMATCH "$TMP/transcript")"
check "no_uidl: two sessions" 2 "$(grep -c '^CONNECT' "$TMP/transcript")"
check "no_uidl: QUIT confirmed the DELEs" "C: DELE 3 C: QUIT" \
    "$(grep -A1 '^C: DELE 3' "$TMP/transcript" | tr '\n' ' ' | sed 's/ $//')"
check "no_uidl: the fallback is logged" 1 "$(grep -c 'server has no UIDL' "$TMP/log")"
check "no_uidl: three messages recorded" 3 \
    "$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded' AND deleted_at IS NOT NULL")"
check "no_uidl: keys are header digests" 3 \
    "$(sql "SELECT count(*) FROM messages WHERE uidl ~ '^hdr:[0-9a-f]{64}(-2)?\$'")"
check "no_uidl: the repeated header block got -2" 1 \
    "$(sql "SELECT count(*) FROM messages WHERE uidl LIKE '%-2'")"
check "no_uidl: one key per header block" 1 "$(sql "SELECT count(*) FROM messages m JOIN messages d ON d.uidl = m.uidl || '-2'")"
check "no_uidl: bounce rows" "hard2@example.org hard2@example.org hard1@example.org" \
    "$(sql "SELECT string_agg(recipient, ' ' ORDER BY recipient DESC) FROM bounces")"
check "no_uidl: the password is not logged" 0 "$(grep -c 'pw-no-uidl' "$TMP/log")"
[ "$FAILS" -eq 0 ]
