#!/usr/bin/env bash
# test_e2e_big_listing.sh - a server whose mailbox holds a million
# messages (three bounces, then a made-up tail) costs a pass what a few
# thousand cost: bouncerd asks STAT, lists the oldest with "UIDL n" and
# "LIST n" instead of reading the whole listing, takes max_messages of
# them oldest first, and the next pass goes on where it stopped.  Over
# implicit TLS and over STARTTLS; the server is scripted (Dovecot would
# need a million files).
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services big_listing
command -v python3 >/dev/null || { skip big_listing "python3 missing"; exit 0; }
command -v openssl >/dev/null || { skip big_listing "openssl missing"; exit 0; }
make_cert
LIMIT=64
if nm -D "$BIN" 2>/dev/null | grep -q __asan_init || ldd "$BIN" 2>/dev/null | grep -q libasan; then
	LIMIT=100000	# a sanitizer build's shadow memory says nothing
fi
N=1000000

for mode in implicit starttls; do
	fresh_db "big_$mode"
	drop=$TMP/drop-$mode
	mkdir -p "$drop"
	for i in 1 2 3; do
		sed "s/@ID@/$i/g" "$FIX/dsn-hard.eml" >"$drop/a$i.eml"
	done
	capa=USER,UIDL,TOP,PIPELINING
	[ "$mode" = starttls ] && capa=$capa,STLS
	start_fake "$mode" --maildrop "$drop" --filler "$N" --capa "$capa" \
	    --timeout 120
	cat >"$TMP/c-$mode.yaml" <<YAML
database:
  url: "$DB"
log:
  level: info
defaults:
  interval: 10m
  jitter: 0s
  max_messages: 5
  connect_timeout: 5s
  command_timeout: 20s
mailboxes:
  - name: big
    host: 127.0.0.1
    port: $(cat "$TMP/port")
    tls: $mode
    ca_file: $TMP/cert.pem
    username: u
    password: "pw"
    after_processing: delete
YAML
	/usr/bin/time -f '%M' -o "$TMP/rss" "$BIN" -c "$TMP/c-$mode.yaml" \
	    --once 2>"$TMP/log-$mode"
	check "$mode: pass exit status" 0 $?
	rss=$(($(tail -n 1 "$TMP/rss") / 1024))
	echo "# $mode: a pass over $N messages: ${rss} MB peak RSS"
	[ "$rss" -lt "$LIMIT" ] && pass "$mode: peak RSS ${rss} MB < $LIMIT MB" ||
		fail "$mode: peak RSS under $LIMIT MB" "${rss} MB"
	t=$TMP/transcript
	check "$mode: the whole listing never asked for" 0 \
	    "$(grep -cE '^C: (UIDL|LIST)$' "$t")"
	check "$mode: STAT asked" 1 "$(grep -c '^C: STAT$' "$t")"
	check "$mode: the oldest 2000 listed, no more" "2000|0" \
	    "$(grep -c '^C: UIDL [0-9]*$' "$t")|$(grep -c '^C: UIDL 2001$' "$t")"
	check "$mode: max_messages taken, oldest first" \
	    "a1,a2,a3,filler1,filler2" \
	    "$(sql "SELECT string_agg(uidl, ',' ORDER BY uidl) FROM messages")"
	check "$mode: the three bounces recorded" 3 \
	    "$(sql "SELECT count(*) FROM bounces")"
	check "$mode: the bounces' files deleted at QUIT" 0 \
	    "$(find "$drop" -name 'a*.eml' | wc -l)"
	grep -q 'more messages than a pass takes.*messages=1000003 listed=2000' \
	    "$TMP/log-$mode" && pass "$mode: partial listing logged" ||
		fail "$mode: partial listing logged" "$(grep -m1 'listing' "$TMP/log-$mode")"
	# the next pass goes on with the next oldest
	"$BIN" -c "$TMP/c-$mode.yaml" --once 2>>"$TMP/log-$mode"
	check "$mode: second pass exit status" 0 $?
	check "$mode: second pass takes the next five" \
	    "filler3,filler4,filler5,filler6,filler7" \
	    "$(sql "SELECT string_agg(uidl, ',' ORDER BY fetched_at, uidl) FROM messages WHERE uidl NOT IN ('a1','a2','a3','filler1','filler2')")"
done
[ "$FAILS" = 0 ]
