# lib_poller.sh - shared steps of the bouncerd end-to-end tests (sourced,
# not run): skip without services, a fresh database per test, seeding
# Dovecot Maildirs from tests/fixtures/poller, config files, SQL counts.
# Tests print PASS/FAIL/SKIP lines like the C tests (tests/test.h).

SRC=${BOUNCER_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${BOUNCER_BUILD:-$SRC/build}
BIN=${BOUNCERD_BIN:-$BUILD/bin/bouncerd}
FIX=$SRC/tests/fixtures/poller
FAILS=0

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP $1: $2"; }
check() {	# NAME WANT GOT
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "want '$2', got '$3'"; fi
}

need_services() {	# NAME
	local v
	for v in BOUNCER_TEST_PG BOUNCER_TEST_PG_ADMIN BOUNCER_TEST_POP3S_HOST \
	    BOUNCER_TEST_POP3S_PORT BOUNCER_TEST_POP3_CA BOUNCER_TEST_MAILDIR_ROOT \
	    BOUNCER_TEST_MAIL_UID; do
		if [ -z "${!v:-}" ]; then
			skip "$1" "$v not set (no test services)"
			exit 0
		fi
	done
	[ -x "$BIN" ] || { fail "$1" "$BIN missing"; exit 1; }
	command -v psql >/dev/null || { skip "$1" "psql missing"; exit 0; }
}

TMP=$(mktemp -d /tmp/bouncerd-e2e.XXXXXX)
chmod 755 "$TMP"
DBNAME=""
PIDS=()

cleanup_lib() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$DBNAME" ]; then
		psql "$BOUNCER_TEST_PG_ADMIN" -qAt -c "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null 2>&1 || true
	fi
	[ -n "${KEEP_TMP:-}" ] && cp -r "$TMP" "$KEEP_TMP"
	rm -rf "$TMP"
}
trap cleanup_lib EXIT

# A database of our own, owned by the test role: DB holds its URI.
fresh_db() {	# SUFFIX
	DBNAME=poller_$1_$$
	PGOPTIONS="-c client_min_messages=warning" psql "$BOUNCER_TEST_PG_ADMIN" -qAt -v ON_ERROR_STOP=1 \
	    -c "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" \
	    -c "CREATE DATABASE $DBNAME OWNER bouncer" >/dev/null
	DB=${BOUNCER_TEST_PG/\/bouncer\?//$DBNAME?}
}

sql() { psql "$DB" -qAt -v ON_ERROR_STOP=1 -c "$1"; }

pop_user() {	# N -> user name of the N-th test mailbox (1-based)
	local pairs=${BOUNCER_TEST_POP3_USERS//,/ } a
	read -r -a a <<<"$pairs"
	echo "${a[$(($1 - 1))]%%:*}"
}
pop_pass() {
	local pairs=${BOUNCER_TEST_POP3_USERS//,/ } a
	read -r -a a <<<"$pairs"
	echo "${a[$(($1 - 1))]#*:}"
}

maildir() { echo "$BOUNCER_TEST_MAILDIR_ROOT/$1/Maildir"; }

# Empties a mailbox, Dovecot's index and UID list included.
clear_mailbox() {	# USER
	local md
	md=$(maildir "$1")
	find "$md/new" "$md/cur" "$md/tmp" -type f -delete 2>/dev/null
	rm -f "$md"/dovecot* 2>/dev/null
	true
}

mail_count() {	# USER -> messages in the Maildir
	local md
	md=$(maildir "$1")
	find "$md/new" "$md/cur" -type f | wc -l
}

# Drops fixture KIND with @ID@ replaced by ID into USER's Maildir.
seed() {	# USER KIND ID
	local md f
	md=$(maildir "$1")
	f=$2.$3.$$.$RANDOM
	sed "s/@ID@/$3/g" "$FIX/$2.eml" >"$md/tmp/$f"
	chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$md/tmp/$f"
	mv "$md/tmp/$f" "$md/new/$f"
}

# Many messages at once (faster than seed in a loop): KIND ID-range.
seed_many() {	# USER KIND FIRST LAST
	local md i f
	md=$(maildir "$1")
	for ((i = $3; i <= $4; i++)); do
		f=$2.$i.$$
		sed "s/@ID@/$i/g" "$FIX/$2.eml" >"$md/tmp/$f"
	done
	chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$md"/tmp/"$2".*.$$
	for ((i = $3; i <= $4; i++)); do
		mv "$md/tmp/$2.$i.$$" "$md/new/"
	done
}

# An emptied mailbox with 500 mixed messages: 200 single DSNs, 100
# two-recipient DSNs, 50 complaints, 50 auto-replies, 100 plain mails
# (Message-ID numbers 1..500) -> 500 bounce rows.
seed_mixed_500() {	# USER
	clear_mailbox "$1"
	seed_many "$1" dsn-hard 1 200
	seed_many "$1" dsn-multi 201 300
	seed_many "$1" arf 301 350
	seed_many "$1" autoreply 351 400
	seed_many "$1" plain 401 500
}

# Writes a config: CONF_FILE; mailboxes given as "N:mode" (delete|keep).
write_config() {	# FILE HTTP_LISTEN WORKERS INTERVAL MAILBOX...
	local file=$1 listen=$2 workers=$3 interval=$4 spec n mode
	shift 4
	{
		echo "database:"
		echo "  url: \"$DB\""
		echo "  batch_size: ${BATCH_SIZE:-20}"
		echo "log:"
		echo "  level: ${LOG_LEVEL:-info}"
		if [ -n "$listen" ]; then
			echo "http:"
			echo "  listen: \"$listen\""
		fi
		echo "workers: $workers"
		echo "defaults:"
		echo "  interval: $interval"
		echo "  jitter: 0s"
		echo "  max_messages: ${MAX_MESSAGES:-500}"
		echo "  connect_timeout: 5s"
		echo "  command_timeout: 10s"
		[ -n "${FIRST_PASS:-}" ] && echo "  first_pass: $FIRST_PASS"
		echo "mailboxes:"
		for spec in "$@"; do
			n=${spec%%:*}
			mode=${spec#*:}
			echo "  - name: mb$n"
			echo "    host: 127.0.0.1"
			echo "    port: $BOUNCER_TEST_POP3S_PORT"
			echo "    tls: implicit"
			echo "    ca_file: $BOUNCER_TEST_POP3_CA"
			echo "    username: $(pop_user "$n")"
			if [ "${BAD_PASSWORD:-}" = "$n" ]; then
				echo "    password: \"not-the-password\""
			else
				echo "    password: \"$(pop_pass "$n")\""
			fi
			echo "    after_processing: $mode"
			[ "$mode" = keep ] && echo "    keep_days: ${KEEP_DAYS:-7}"
		done
	} >"$file"
}

# Ledger and bounce rows of one mailbox name.
ledger_count() { sql "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = '$1'"; }
bounce_count() { sql "SELECT count(*) FROM bounces x JOIN messages m ON m.id = x.message_id JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = '$1'"; }

# Waits until CMD succeeds or SECONDS pass.
wait_for() {	# SECONDS CMD...
	local end=$((SECONDS + $1))
	shift
	while ((SECONDS < end)); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}

# A free TCP port on 127.0.0.1.
free_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	return 1
}

# --- scripted POP3 servers (tests/helpers/fakepop3.py) ---

# A self-signed certificate for 127.0.0.1: $TMP/cert.pem, $TMP/key.pem.
make_cert() {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" \
	    -out "$TMP/cert.pem" -days 2 -subj /CN=127.0.0.1 \
	    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
}

# Script lines sending FILE as a multi-line reply body (dot-stuffed), one
# "! sleep SECONDS" after each line when given, then the final ".".
script_body() {	# FILE [SECONDS]
	sed -e 's/\r$//' -e 's/^\./../' -e 's/^/< /' -e 's/^< $/</' "$1" |
		if [ -n "${2:-}" ]; then sed "a ! sleep $2"; else cat; fi
	echo "< ."
}

# Script lines of a login as user "u", password "pw", up to the NOOP
# bouncerd sends after it: MODE none|implicit|starttls (STLS first).
script_login() {	# MODE
	local capa="< USER
< UIDL
< ."
	echo "< +OK fake ready"
	echo "> CAPA"
	echo "< +OK"
	[ "$1" = starttls ] && echo "< STLS"
	echo "$capa"
	if [ "$1" = starttls ]; then
		printf '%s\n' "> STLS" "< +OK begin TLS" "! starttls" "> CAPA" "< +OK"
		echo "$capa"
	fi
	printf '%s\n' "> USER u" "< +OK" "> PASS pw" "< +OK logged in" "> NOOP" "< +OK"
}

# Starts fakepop3.py with ARGS... in TLS MODE (none|implicit|starttls,
# with $TMP/cert.pem), its transcript in $TMP/transcript; waits for its
# port, in $TMP/port.
start_fake() {	# MODE ARGS...
	local mode=$1 tls=()
	shift
	rm -f "$TMP/port" "$TMP/transcript"
	[ "$mode" != none ] && tls=(--cert "$TMP/cert.pem" --key "$TMP/key.pem")
	[ "$mode" = implicit ] && tls+=(--tls)
	python3 "$SRC/tests/helpers/fakepop3.py" --transcript "$TMP/transcript" \
	    --port-file "$TMP/port" "${tls[@]}" "$@" &
	PIDS+=($!)
	for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.1; done
}
