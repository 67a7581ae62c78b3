#!/usr/bin/env bash
# test_e2e_quit_unconfirmed.sh - in delete mode a ledger row is marked
# deleted with its record, just before the DELE.  When no QUIT confirms
# the DELEs (a DELE refused ends the session; or the server refuses
# QUIT), the marks are cleared at the end of the pass; a mark left by a process that ended before its QUIT is
# cleared by the next pass, which finds the message still listed, DELEs
# it again without fetching it and marks it once QUIT confirms.
# Scripted server (Dovecot cannot be made to refuse DELE or QUIT).
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services quit_unconfirmed
command -v python3 >/dev/null || { skip quit_unconfirmed "python3 missing"; exit 0; }
command -v openssl >/dev/null || { skip quit_unconfirmed "openssl missing"; exit 0; }
make_cert
for i in 1 2 3 4; do sed "s/@ID@/$i/g" "$FIX/dsn-hard.eml" >"$TMP/m$i"; done
size=$(cat "$TMP/m1" "$TMP/m2" "$TMP/m3" "$TMP/m4" | wc -c)

listing() {	# K...: messages K... as 1..n
	local n=1
	echo "> STAT"
	echo "< +OK $# $size"
	echo "> UIDL"
	echo "< +OK"
	for k in "$@"; do echo "< $n uid-$k"; n=$((n + 1)); done
	echo "< ."
	echo "> LIST"
	echo "< +OK"
	n=1
	for k in "$@"; do echo "< $n $(wc -c <"$TMP/m$k")"; n=$((n + 1)); done
	echo "< ."
}

run_pass() {	# the script is in $TMP/script
	start_fake implicit --script "$TMP/script" --timeout 30
	config
	"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
	check "$1: no mismatch with the script" 0 "$(grep -c MISMATCH "$TMP/transcript")"
}

commands() { grep -E '^C: (RETR|DELE|QUIT)' "$TMP/transcript" | sed 's/^C: //' | paste -sd'|'; }

config() {
	cat >"$TMP/c.yaml" <<YAML
database:
  url: "$DB"
  batch_size: 10
defaults:
  interval: 10m
  jitter: 0s
  connect_timeout: 5s
  command_timeout: 10s
mailboxes:
  - name: quitless
    host: 127.0.0.1
    port: $(cat "$TMP/port")
    tls: implicit
    ca_file: $TMP/cert.pem
    username: u
    password: "pw"
    after_processing: delete
YAML
}

marked() { sql "SELECT coalesce(string_agg(uidl, ' ' ORDER BY uidl), '-') FROM messages WHERE deleted_at IS NOT NULL"; }

fresh_db quit_unconfirmed
# pass 1: three recorded; DELE 3 refused, which ends the session
{
	script_login implicit
	listing 1 2 3
	for i in 1 2 3; do echo "> RETR $i"; echo "< +OK"; script_body "$TMP/m$i"; done
	printf '%s\n' "> DELE 1" "< +OK" "> DELE 2" "< +OK" "> DELE 3" "< -ERR locked"
} >"$TMP/script"
run_pass "pass 1"
check "pass 1: three recorded" 3 "$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")"
check "pass 1: no mark without a QUIT" "-" "$(marked)"
check "pass 1: the whole list was read" 1 "$(sql "SELECT count(*) FROM mailboxes WHERE listed_at IS NOT NULL")"

# pass 2: the three DELEd again, a new uid-4 recorded and DELEd; QUIT
# refused
{
	script_login implicit
	listing 1 2 3 4
	printf '%s\n' "> DELE 1" "< +OK" "> DELE 2" "< +OK" "> DELE 3" "< +OK"
	printf '%s\n' "> RETR 4" "< +OK"
	script_body "$TMP/m4"
	printf '%s\n' "> DELE 4" "< +OK" "> QUIT" "< -ERR cannot expunge"
} >"$TMP/script"
run_pass "pass 2"
check "pass 2: only the new one fetched" "DELE 1|DELE 2|DELE 3|RETR 4|DELE 4|QUIT" "$(commands)"
check "pass 2: no mark without a QUIT" "-" "$(marked)"

# as after a process that ended between a record and its QUIT: uid-4
# marked deleted while the server still lists it
sql "UPDATE messages SET deleted_at = now() - interval '1 hour' WHERE uidl = 'uid-4'" >/dev/null
{
	script_login implicit
	listing 1 2 3 4
	printf '%s\n' "> DELE 1" "< +OK" "> DELE 2" "< +OK" "> DELE 3" "< +OK"
	printf '%s\n' "> DELE 4" "< +OK" "> QUIT" "< +OK bye"
} >"$TMP/script"
run_pass "pass 3"
check "pass 3: DELEd again, not fetched" "DELE 1|DELE 2|DELE 3|DELE 4|QUIT" "$(commands)"
check "pass 3: all marked" "uid-1 uid-2 uid-3 uid-4" "$(marked)"
check "pass 3: uid-4 marked when QUIT confirmed" 1 \
    "$(sql "SELECT count(*) FROM messages WHERE uidl = 'uid-4' AND deleted_at > now() - interval '1 minute'")"

# pass 4: a new one recorded, DELEd, QUIT confirms: marked with its record
{
	script_login implicit
	listing 1
	printf '%s\n' "> RETR 1" "< +OK"
	script_body "$TMP/m1" | sed 's/uid-1/uid-5/'
	printf '%s\n' "> DELE 1" "< +OK" "> QUIT" "< +OK bye"
} >"$TMP/script"
sed -i 's/^< 1 uid-1$/< 1 uid-5/' "$TMP/script"
run_pass "pass 4"
check "pass 4: fetched and deleted" "RETR 1|DELE 1|QUIT" "$(commands)"
check "pass 4: marked" "uid-1 uid-2 uid-3 uid-4 uid-5" "$(marked)"
check "each bounce once" 5 "$(sql "SELECT count(*) FROM bounces")"
[ "$FAILS" = 0 ]
