#!/usr/bin/env bash
# test_e2e_pass_timeout.sh - a server that drips a message out a line a
# second holds a pass no longer than pass_timeout: the message being read
# is finished and recorded, no new one is started, what was recorded is
# deleted, and the rest waits for the next pass.  Over implicit TLS and
# STARTTLS; the server is scripted (Dovecot cannot be made to drip).
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services pass_timeout
command -v python3 >/dev/null || { skip pass_timeout "python3 missing"; exit 0; }
command -v openssl >/dev/null || { skip pass_timeout "openssl missing"; exit 0; }
make_cert
for i in 1 2 3; do sed "s/@ID@/$i/g" "$FIX/dsn-hard.eml" >"$TMP/m$i"; done
size=$(cat "$TMP/m1" "$TMP/m2" "$TMP/m3" | wc -c)

for mode in implicit starttls; do
	fresh_db "pass_timeout_$mode"
	{
		script_login "$mode"
		echo "> STAT"
		echo "< +OK 3 $size"
		echo "> UIDL"
		echo "< +OK"
		for i in 1 2 3; do echo "< $i uid-$i"; done
		echo "< ."
		echo "> LIST"
		echo "< +OK"
		for i in 1 2 3; do echo "< $i $(wc -c <"$TMP/m$i")"; done
		echo "< ."
		echo "> RETR 1"
		echo "< +OK"
		script_body "$TMP/m1"
		echo "> RETR 2"
		echo "< +OK"
		script_body "$TMP/m2" 0.3	# about 14 s: past pass_timeout
		echo "> DELE 1"
		echo "< +OK"
		echo "> DELE 2"
		echo "< +OK"
		echo "> QUIT"
		echo "< +OK bye"
	} >"$TMP/script"
	start_fake "$mode" --script "$TMP/script" --timeout 60
	cat >"$TMP/c.yaml" <<YAML
database:
  url: "$DB"
  batch_size: 1
defaults:
  interval: 10m
  jitter: 0s
  connect_timeout: 5s
  command_timeout: 30s
  pass_timeout: 10s
mailboxes:
  - name: drip
    host: 127.0.0.1
    port: $(cat "$TMP/port")
    tls: $mode
    ca_file: $TMP/cert.pem
    username: u
    password: "pw"
    after_processing: delete
YAML
	t0=$SECONDS
	"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
	check "$mode: exit status" 0 $?
	echo "# $mode: the pass took $((SECONDS - t0)) s (pass_timeout 10 s)"
	check "$mode: the two read are recorded" "uid-1 uid-2" \
	    "$(sql "SELECT string_agg(uidl, ' ' ORDER BY uidl) FROM messages WHERE outcome = 'recorded'")"
	check "$mode: no RETR after the deadline" 0 "$(grep -c '^C: RETR 3' "$TMP/transcript")"
	check "$mode: the recorded ones deleted, then QUIT" "DELE 1|DELE 2|QUIT" \
	    "$(grep -E '^C: (DELE|QUIT)' "$TMP/transcript" | sed 's/^C: //' | paste -sd'|')"
	check "$mode: no mismatch" 0 "$(grep -c MISMATCH "$TMP/transcript")"
	grep -q 'pass_timeout reached' "$TMP/log" && pass "$mode: deadline logged" ||
		fail "$mode: deadline logged" "$(tail -n 3 "$TMP/log")"
done
[ "$FAILS" = 0 ]
