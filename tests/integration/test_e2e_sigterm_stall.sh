#!/usr/bin/env bash
# test_e2e_sigterm_stall.sh - SIGTERM (systemctl stop) while a server
# stalls in the middle of a RETR: bouncerd exits within 2 s instead of
# waiting out its transfer deadline, what was fully read is recorded, and
# the rest stays on the server.  The server is scripted (Dovecot cannot be
# made to stall), with plain TCP, implicit TLS and STARTTLS.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services sigterm_stall
command -v python3 >/dev/null || { skip sigterm_stall "python3 missing"; exit 0; }
command -v openssl >/dev/null || { skip sigterm_stall "openssl missing"; exit 0; }
make_cert
msg() { sed "s/@ID@/$1/g" "$FIX/dsn-hard.eml"; }
msg 1 >"$TMP/m1"
msg 2 >"$TMP/m2"

for mode in none implicit starttls; do
	fresh_db "sigterm_$mode"
	{
		script_login "$mode"
		echo "> STAT"
		echo "< +OK 2 $(cat "$TMP/m1" "$TMP/m2" | wc -c)"
		echo "> UIDL"
		echo "< +OK"
		echo "< 1 uid-one"
		echo "< 2 uid-two"
		echo "< ."
		echo "> LIST"
		echo "< +OK"
		echo "< 1 $(wc -c <"$TMP/m1")"
		echo "< 2 $(wc -c <"$TMP/m2")"
		echo "< ."
		echo "> RETR 1"
		echo "< +OK"
		script_body "$TMP/m1"
		echo "> RETR 2"
		echo "< +OK"
		head -n 5 "$TMP/m2" | sed -e 's/\r$//' -e 's/^/< /'
		echo "! sleep 120"
	} >"$TMP/script"
	start_fake "$mode" --script "$TMP/script" --timeout 150
	cat >"$TMP/c.yaml" <<YAML
database:
  url: "$DB"
  batch_size: 1
defaults:
  interval: 10m
  jitter: 0s
  connect_timeout: 5s
  command_timeout: 1m
mailboxes:
  - name: stall
    host: 127.0.0.1
    port: $(cat "$TMP/port")
    tls: $mode
    ca_file: $TMP/cert.pem
    username: u
    password: "pw"
    after_processing: delete
YAML
	"$BIN" -c "$TMP/c.yaml" 2>"$TMP/log" &
	PID=$!
	PIDS+=("$PID")
	retr2() { grep -q '^C: RETR 2' "$TMP/transcript" 2>/dev/null; }
	if ! wait_for 20 retr2; then
		fail "$mode: the stalled RETR was reached" "$(tail -n 5 "$TMP/log"; cat "$TMP/transcript")"
		continue
	fi
	sleep 0.5
	t0=$(date +%s%N)
	kill -TERM "$PID"
	gone() { ! kill -0 "$PID" 2>/dev/null; }
	wait_for 10 gone
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	wait "$PID" 2>/dev/null
	rc=$?
	[ "$ms" -lt 2000 ] && pass "$mode: SIGTERM during a stalled RETR: exit after $ms ms" ||
		fail "$mode: SIGTERM during a stalled RETR: exit within 2 s" "$ms ms"
	check "$mode: exit status" 0 "$rc"
	check "$mode: the message read whole is recorded" "uid-one" \
	    "$(sql "SELECT string_agg(uidl, ' ') FROM messages WHERE outcome = 'recorded'")"
	check "$mode: the stalled one is not" 0 \
	    "$(sql "SELECT count(*) FROM messages WHERE uidl = 'uid-two'")"
	check "$mode: nothing deleted without a commit" "" "$(grep '^C: DELE 2' "$TMP/transcript")"
done
[ "$FAILS" = 0 ]
