#!/usr/bin/env bash
# test_oauth.sh - XOAUTH2 login against a real Dovecot whose passdb is its
# oauth2 driver, validating tokens by RFC 7662 introspection at the
# project's test authorization server (tests/helpers/oauthserver.py), which
# is also the HTTPS token endpoint bouncerd's oauth module talks to.
# Checks: refresh-token and client-credentials grants, XOAUTH2 login and a
# full listing + RETR, a cached token reused, an expired token refreshed
# exactly once, and a revoked refresh token failing with the endpoint's
# status and error fields after exactly one request.
# Then the daemon itself (client credentials with --once; refresh token
# while running: renewal after the server refuses a token, a revoked
# refresh token failing after one request, the token metrics).
# Starts its own Dovecot (needs root, dovecot, python3, openssl).
set -uo pipefail

SRC=${BOUNCER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BOUNCER_BUILD:-$SRC/build}
HELPER=$BUILD/tests/helpers/oauth_pop3
FAILED=0

check() {	# NAME WANT GOT
	if [ "$2" = "$3" ]; then
		echo "PASS oauth: $1"
	else
		echo "FAIL oauth: $1: got '$3', want '$2'"
		FAILED=1
	fi
}
has() {	# NAME FILE PATTERN (fixed string)
	if grep -qF -- "$3" "$2"; then
		echo "PASS oauth: $1"
	else
		echo "FAIL oauth: $1: no '$3' in $(tr '\n' '|' <"$2")"
		FAILED=1
	fi
}
skip() { echo "SKIP oauth: $*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root to start Dovecot"
command -v dovecot >/dev/null || skip "dovecot not installed"
command -v python3 >/dev/null || skip "python3 not installed"
command -v openssl >/dev/null || skip "openssl not installed"
[ -x "$HELPER" ] || skip "$HELPER not built"

TMP=$(mktemp -d /tmp/test_oauth.XXXXXX)
chmod 755 "$TMP"
SRV_PID= DOVECOT_PID=
cleanup() {
	[ -n "$DOVECOT_PID" ] && kill "$DOVECOT_PID" 2>/dev/null
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null
	for _ in $(seq 1 50); do
		{ [ -z "$DOVECOT_PID" ] || ! kill -0 "$DOVECOT_PID" 2>/dev/null; } && break
		sleep 0.1
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		port_in_use "$p" || { echo "$p"; return; }
	done
	return 1
}

MAIL_UID=$(id -u nobody) MAIL_GID=$(id -g nobody)
USER=oauthuser
CLIENT_ID=bouncerd-test-client
CLIENT_SECRET=$(openssl rand -hex 16)
REFRESH=rt-$(openssl rand -hex 16)
SCOPE=https://outlook.office365.com/.default
D=$TMP/dovecot
mkdir -p "$D/run" "$D/state" "$D/mail/$USER/Maildir/"{new,cur,tmp} "$TMP/oauth"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null || skip "openssl req failed"
chmod 600 "$TMP/key.pem"

# Three messages in the mailbox.
for i in 1 2 3; do
	f=$D/mail/$USER/Maildir/tmp/m$i
	printf 'From: MAILER-DAEMON@example.net\r\nTo: bounces@example.org\r\nSubject: Undelivered Mail %s\r\nMessage-ID: <oauth%s@example.net>\r\n\r\nbody %s\r\n' \
	    "$i" "$i" "$i" >"$f"
	mv "$f" "$D/mail/$USER/Maildir/new/m$i"
done
chown -R "$MAIL_UID:$MAIL_GID" "$D/mail"

# Starts the authorization server; sets SRV_PID, HTTPS_PORT and HTTP_PORT.
start_oauth_server() {
	rm -f "$TMP/oauth/ports"
	python3 "$SRC/tests/helpers/oauthserver.py" "$TMP/oauth" "$TMP/cert.pem" \
	    "$TMP/key.pem" "$CLIENT_ID" "$CLIENT_SECRET" "$REFRESH" "$USER" "$SCOPE" \
	    3600 </dev/null >>"$TMP/oauthserver.log" 2>&1 &
	SRV_PID=$!
	for _ in $(seq 1 100); do [ -f "$TMP/oauth/ports" ] && break; sleep 0.1; done
	[ -f "$TMP/oauth/ports" ] || { cat "$TMP/oauthserver.log"; echo "FAIL oauth: test server did not start"; exit 1; }
	read -r HTTPS_PORT HTTP_PORT <"$TMP/oauth/ports"
}
# A fresh authorization server (tokens and counters reset) on new ports,
# with Dovecot's introspection URL moved to it.
restart_oauth_server() {
	local old=$HTTP_PORT
	kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null
	start_oauth_server
	sed -i "s|127.0.0.1:$old/|127.0.0.1:$HTTP_PORT/|" "$D/dovecot-oauth2.conf.ext"
	doveadm -c "$D/dovecot.conf" reload
	sleep 1
}
start_oauth_server
POP3S_PORT=$(free_port)

cat >"$D/dovecot-oauth2.conf.ext" <<CONF
introspection_mode = post
introspection_url = http://127.0.0.1:$HTTP_PORT/introspect
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 10000
CONF
cat >"$D/dovecot.conf" <<CONF
protocols = pop3
listen = 127.0.0.1
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
info_log_path = $D/dovecot.log
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
ssl = required
ssl_cert = <$TMP/cert.pem
ssl_key = <$TMP/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = xoauth2 oauthbearer
auth_failure_delay = 0
auth_verbose = yes
auth_cache_size = 0
login_trusted_networks =
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $D/dovecot-oauth2.conf.ext
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$D/mail/%u
}
first_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = $POP3S_PORT
    ssl = yes
  }
}
CONF
dovecot -c "$D/dovecot.conf" </dev/null >"$TMP/dovecot-start.log" 2>&1 || {
	cat "$TMP/dovecot-start.log" "$D/dovecot.log" 2>/dev/null
	echo "FAIL oauth: dovecot with the oauth2 passdb failed to start"
	exit 1
}
DOVECOT_PID=$(cat "$D/run/master.pid")
for _ in $(seq 1 100); do port_in_use "$POP3S_PORT" && break; sleep 0.1; done

export OA_HOST=127.0.0.1 OA_PORT=$POP3S_PORT OA_CA=$TMP/cert.pem OA_USER=$USER
export OA_TOKEN_URL=https://127.0.0.1:$HTTPS_PORT/token
export OA_CLIENT_ID=$CLIENT_ID OA_CLIENT_SECRET=$CLIENT_SECRET
export OA_CONTROL=http://127.0.0.1:$HTTP_PORT
REQ=$TMP/oauth/requests.log
nreq() { grep -c "^$1" "$REQ" 2>/dev/null || true; }

# 1. Refresh-token grant: fetch, log in, list and retrieve; a second pass
#    reuses the cached token; after the tokens expire at the server, the
#    refused login leads to exactly one refresh and the pass succeeds.
: >"$REQ"
OA_REFRESH=$REFRESH "$HELPER" pass pass expire pass >"$TMP/out1" 2>"$TMP/err1"
check "refresh grant: helper exit status" 0 $?
check "refresh grant: every pass ok" 3 "$(grep -c '^pass ok messages=3 ' "$TMP/out1")"
check "refresh grant: first token fetched, then cached" \
    "token ok src=fetched|token ok src=cache|token ok src=cache|token ok src=fetched" \
    "$(grep '^token' "$TMP/out1" | paste -sd'|')"
has "expired token: login refused by the server" "$TMP/out1" "login refused: auth"
check "refresh grant: token requests (initial + one refresh)" 2 "$(nreq 'token refresh_token 200')"
check "refresh grant: no other token requests" 2 "$(nreq 'token ')"
check "refresh grant: introspections (3 logins ok + 1 expired)" "3 1" \
    "$(nreq 'introspect active') $(nreq 'introspect inactive')"
has "dovecot logged the XOAUTH2 login" "$D/dovecot.log" "method=XOAUTH2"
check "no token in the output" 0 "$(grep -c 'at-' "$TMP/out1")"

# 2. Client-credentials grant with a scope.
: >"$REQ"
OA_SCOPE=$SCOPE "$HELPER" pass >"$TMP/out2" 2>"$TMP/err2"
check "client credentials: helper exit status" 0 $?
has "client credentials: pass ok" "$TMP/out2" "pass ok messages=3 "
check "client credentials: one token request" 1 "$(nreq 'token client_credentials 200')"
OA_SCOPE=https://wrong.example/.default "$HELPER" pass >"$TMP/out2b" 2>&1
check "client credentials, wrong scope: fails" 1 $?
has "client credentials, wrong scope: endpoint error quoted" "$TMP/out2b" \
    "HTTP 400: invalid_scope: The provided scope is not granted."
OA_SCOPE=$SCOPE OA_CLIENT_SECRET=wrong-secret "$HELPER" pass >"$TMP/out2c" 2>&1
has "client credentials, wrong secret: invalid_client" "$TMP/out2c" \
    "HTTP 401: invalid_client: Client authentication failed."
check "wrong secret: the secret is not in the error" 0 "$(grep -c 'wrong-secret' "$TMP/out2c")"

# 3. Revoked refresh token: a clear error naming the endpoint, the status
#    and the error fields, after exactly one request per pass, and no
#    POP3 login attempted with nothing to log in with.
: >"$REQ"
OA_REFRESH=$REFRESH "$HELPER" revoke pass pass >"$TMP/out3" 2>"$TMP/err3"
check "revoked: helper exit status" 1 $?
check "revoked: both passes fail" 2 "$(grep -c '^pass failed' "$TMP/out3")"
has "revoked: error names endpoint, status and fields" "$TMP/out3" \
    "token error src=fetched: token endpoint $OA_TOKEN_URL: HTTP 400: invalid_grant: Token has been expired or revoked."
check "revoked: exactly one token request per pass" 2 "$(nreq 'token refresh_token 400 invalid_grant')"
check "revoked: no login attempted" 0 "$(grep -c '^login' "$TMP/out3")"
check "revoked: refresh token not in the output" 0 "$(grep -c -- "$REFRESH" "$TMP/out3")"

# 4. Expired token whose refresh is then refused: one refresh attempt, no
#    second login.
: >"$REQ"
restart_oauth_server
: >"$REQ"
OA_TOKEN_URL=https://127.0.0.1:$HTTPS_PORT/token OA_CONTROL=http://127.0.0.1:$HTTP_PORT \
    OA_REFRESH=$REFRESH "$HELPER" pass expire revoke pass >"$TMP/out4" 2>"$TMP/err4"
check "expired then revoked: helper exit status" 1 $?
check "expired then revoked: first pass ok, second fails" "1 1" \
    "$(grep -c '^pass ok' "$TMP/out4") $(grep -c '^pass failed' "$TMP/out4")"
check "expired then revoked: one login refused, no login after the failed refresh" 1 \
    "$(grep -c '^login refused' "$TMP/out4")"
check "expired then revoked: token requests (1 ok + 1 refused)" "1 1" \
    "$(nreq 'token refresh_token 200') $(nreq 'token refresh_token 400')"

# 5. The daemon itself: bouncerd obtains tokens (client-credentials grant
#    with --once, refresh-token grant running), logs in with XOAUTH2 and
#    records the mailbox; a token the server stops accepting is renewed
#    once and the pass succeeds; a revoked refresh token fails the pass
#    with the endpoint's error after exactly one request.
BIN=$BUILD/bin/bouncerd
if [ -z "${BOUNCER_TEST_PG_ADMIN:-}" ] || [ ! -x "$BIN" ]; then
	echo "SKIP oauth: daemon: no test database or no bouncerd binary"
else
	restart_oauth_server
	DBNAME=oauth_daemon_$$
	psql "$BOUNCER_TEST_PG_ADMIN" -qc "CREATE DATABASE $DBNAME OWNER bouncer" >/dev/null
	DBURL=${BOUNCER_TEST_PG%/bouncer\?*}/$DBNAME?sslmode=disable
	ledger() { psql "$DBURL" -Atc "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = '$1'"; }
	seed() {
		local i f
		for i in 1 2 3; do
			f=$D/mail/$USER/Maildir/tmp/d$1$i
			printf 'From: MAILER-DAEMON@example.net\r\nTo: bounces@example.org\r\nSubject: Undelivered Mail %s\r\nMessage-ID: <oauthd%s%s@example.net>\r\n\r\nbody\r\n' \
			    "$i" "$1" "$i" >"$f"
			chown "$MAIL_UID:$MAIL_GID" "$f"
			mv "$f" "$D/mail/$USER/Maildir/new/d$1$i"
		done
	}
	mkcfg() {	# FILE NAME GRANT-KEY-LINE [extra yaml]
		cat >"$1" <<-Y
		database:
		  url: "$DBURL"
		http:
		  listen: "127.0.0.1:$HTTP_LISTEN"
		defaults:
		  interval: 10s
		  jitter: 0s
		mailboxes:
		  - name: $2
		    host: 127.0.0.1
		    port: $POP3S_PORT
		    ca_file: $TMP/cert.pem
		    username: $USER
		    auth: xoauth2
		    token_url: https://127.0.0.1:$HTTPS_PORT/token
		    token_ca_file: $TMP/cert.pem
		    client_id: $CLIENT_ID
		    client_secret: $CLIENT_SECRET
		    $3
		Y
	}
	HTTP_LISTEN=$(free_port)
	# a) client credentials, one pass
	rm -f "$D/mail/$USER/Maildir/new/"* "$D/mail/$USER/Maildir/cur/"*
	seed a
	: >"$REQ"
	mkcfg "$TMP/app.yaml" app "scope: $SCOPE"
	"$BIN" -c "$TMP/app.yaml" --once >"$TMP/d1.out" 2>"$TMP/d1.err"
	check "daemon, client credentials: --once exit status" 0 $?
	check "daemon, client credentials: 3 messages recorded" 3 "$(ledger app)"
	check "daemon, client credentials: one token request" 1 "$(nreq 'token client_credentials 200')"
	check "daemon, client credentials: mailbox emptied" 0 "$(find "$D/mail/$USER/Maildir/new" "$D/mail/$USER/Maildir/cur" -type f | wc -l)"
	# b) refresh-token grant, running: expire, then revoke
	seed b
	: >"$REQ"
	mkcfg "$TMP/deleg.yaml" delegated "refresh_token: $REFRESH"
	"$BIN" -c "$TMP/deleg.yaml" >"$TMP/d2.out" 2>"$TMP/d2.err" &
	DPID=$!
	waitfor() {	# SECONDS CMD...: until CMD succeeds
		local n=$(($1 * 10))
		shift
		while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 0.1; n=$((n - 1)); done
		return 1
	}
	passes() { [ "$(grep -c 'pass done mailbox=delegated' "$TMP/d2.err")" -ge "$1" ]; }
	waitfor 20 passes 1
	check "daemon, refresh grant: 3 messages recorded" 3 "$(ledger delegated)"
	curl -s -X POST "http://127.0.0.1:$HTTP_PORT/expire" >/dev/null
	seed c
	waitfor 25 passes 2
	has "daemon: refused token renewed once" "$TMP/d2.err" "xoauth2 login refused; renewing the token once"
	check "daemon: pass after the renewal recorded the new mail" 6 "$(ledger delegated)"
	check "daemon: token requests so far (initial + one renewal)" 2 "$(nreq 'token refresh_token 200')"
	curl -s -X POST "http://127.0.0.1:$HTTP_PORT/expire" >/dev/null
	curl -s -X POST "http://127.0.0.1:$HTTP_PORT/revoke" >/dev/null
	failed() { grep -q 'oauth token request failed' "$TMP/d2.err"; }
	waitfor 25 failed
	curl -s "http://127.0.0.1:$HTTP_LISTEN/metrics" >"$TMP/metrics"
	kill -TERM "$DPID"; wait "$DPID"
	check "daemon: exit status after SIGTERM" 0 $?
	has "daemon: revoked refresh token, clear error" "$TMP/d2.err" \
	    "HTTP 400: invalid_grant: Token has been expired or revoked."
	check "daemon: revoked: exactly one refused token request" 1 "$(nreq 'token refresh_token 400')"
	has "daemon: metrics count token refreshes" "$TMP/metrics" 'bouncerd_oauth_token_refreshes_total{mailbox="delegated"} 2'
	has "daemon: metrics count token failures" "$TMP/metrics" 'bouncerd_oauth_token_failures_total{mailbox="delegated"} 1'
	check "daemon: no secret in the logs" 0 \
	    "$(cat "$TMP/d1.err" "$TMP/d2.err" | grep -c -e "$CLIENT_SECRET" -e "$REFRESH")"
	psql "$BOUNCER_TEST_PG_ADMIN" -qc "DROP DATABASE $DBNAME" >/dev/null
fi

[ "$FAILED" = 0 ] || { echo "--- dovecot.log"; tail -n 30 "$D/dovecot.log"; }
exit 0
