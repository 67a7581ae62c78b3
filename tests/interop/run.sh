#!/usr/bin/env bash
# run.sh BUILD_DIR [SERVER...] - bouncerd against the POP3 servers people
# run, each started from its Debian package's files unpacked under a test
# directory (never installed, never a system service), next to a
# throwaway PostgreSQL (tests/services.sh, which also brings Dovecot).
#
# For each server (default: dovecot mailutils popa3d): 200 bounces over
# implicit TLS in delete mode, 50 more in a second pass (over STARTTLS
# where the server offers STLS), then keep mode (20 messages, two passes).
# Every pass must record exactly the records bounce-parse finds in the same
# files, and leave the mailbox as the mode says.  Prints PASS/FAIL lines, a
# table of what each server advertised and how bouncerd logged in and
# deleted, and the time each server took.
#
# The bounces come from ../shared/corpus/eml when present (CORPUS=DIR
# overrides), else from tests/fixtures.  Packages are fetched with
# `apt-get download` into BUILD_DIR/interop/debs once and unpacked there.
set -uo pipefail

B=${1:-build}
shift || true
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$SRC/$B
BIN=$BUILD/bin/bouncerd
BP=$BUILD/bin/bounce-parse
CACHE=$BUILD/interop
SERVERS=${*:-dovecot mailutils popa3d}
CORPUS=${CORPUS:-$SRC/../shared/corpus/eml}
FAILS=0
PIDS=()
SVC=""
W=$(mktemp -d /tmp/bouncerd-interop.XXXXXX)
chmod 755 "$W"

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; FAILS=$((FAILS + 1)); }
check() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "want '$2', got '$3'"; fi; }

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ -n "$SVC" ]; then bash "$SRC/tests/services.sh" stop "$SVC" >/dev/null 2>&1; fi
	[ -n "${KEEP_TMP:-}" ] && cp -r "$W" "$KEEP_TMP"
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$BIN" ] && [ -x "$BP" ] || { echo "FAIL interop: build $B first"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP interop: must run as root"; exit 0; }

# ---- packages ----------------------------------------------------------

declare -A PKGS=(
	[mailutils]="mailutils-pop3d libmailutils9 mailutils-common libgsasl18 libgssglue1 libntlm0 libkyotocabinet16v5 liblzo2-2 guile-3.0-libs libmu-dbm9 libwrap0 libmariadb3 mariadb-common mysql-common libidn12 libltdl7"
	[popa3d]="popa3d"
)

# unpack NAME: the server's packages, unpacked into $CACHE/root-NAME
unpack() {
	local name=$1 p f missing=()
	[ -f "$CACHE/root-$name/.done" ] && return 0
	mkdir -p "$CACHE/debs"
	for p in ${PKGS[$name]}; do
		ls "$CACHE/debs/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		(cd "$CACHE/debs" && apt-get download "${missing[@]}" >"$W/apt-$name.log" 2>&1) ||
		    { (apt-get update >/dev/null 2>&1 && cd "$CACHE/debs" &&
		        apt-get download "${missing[@]}" >"$W/apt-$name.log" 2>&1) ||
		        { cat "$W/apt-$name.log"; return 1; }; }
	fi
	rm -rf "$CACHE/root-$name"
	mkdir -p "$CACHE/root-$name"
	for p in ${PKGS[$name]}; do
		for f in "$CACHE/debs/${p}_"*.deb; do dpkg -x "$f" "$CACHE/root-$name" || return 1; done
	done
	touch "$CACHE/root-$name/.done"
}

libpath() { echo "$CACHE/root-$1/usr/lib/x86_64-linux-gnu:$CACHE/root-$1/lib/x86_64-linux-gnu"; }

free_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	return 1
}

wait_port() {	# PORT
	local i
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ---- messages ----------------------------------------------------------

# 250 messages in $W/msgs/NNNN.eml, and what bounce-parse makes of them
mkdir -p "$W/msgs"
i=0
if [ -d "$CORPUS" ] && [ "$(ls "$CORPUS"/*.eml 2>/dev/null | wc -l)" -ge 250 ]; then
	SOURCE="$(cd "$CORPUS" && pwd) (first 250)"
	for f in $(ls "$CORPUS"/*.eml | sort | head -n 250); do
		i=$((i + 1))
		cp "$f" "$W/msgs/$(printf '%04d' $i).eml"
	done
else
	SOURCE="tests/fixtures/poller (numbered copies)"
	while [ $i -lt 250 ]; do
		for k in dsn-hard dsn-multi arf autoreply plain; do
			i=$((i + 1))
			sed "s/@ID@/$i/g" "$SRC/tests/fixtures/poller/$k.eml" >"$W/msgs/$(printf '%04d' $i).eml"
		done
	done
fi
msgs() {	# FIRST LAST -> file names
	local n
	for ((n = $1; n <= $2; n++)); do echo "$W/msgs/$(printf '%04d' $n).eml"; done
}
expected() {	# FIRST LAST -> "recipient|reason" lines, sorted
	# shellcheck disable=SC2046
	"$BP" --format tsv $(msgs "$1" "$2") | awk -F'\t' 'NR > 1 && $10 != "" { print $10 "|" $3 }' | sort
}

# mbox of the given files, each stored byte for byte (a CRLF message keeps
# its CRLF lines), "From " lines of the content quoted
mbox_append() {	# MBOX FILE...
	local mb=$1
	shift
	python3 - "$mb" "$@" <<'PY'
import re, sys
with open(sys.argv[1], "ab") as out:
    for f in sys.argv[2:]:
        data = open(f, "rb").read()
        data = re.sub(rb"(?m)^(>*From )", rb">\1", data)
        if not data.endswith(b"\n"):
            data += b"\n"
        out.write(b"From MAILER-DAEMON Sat Nov 21 10:00:00 2026\n" + data + b"\n")
PY
}
maildir_add() {	# MAILDIR FILE...: each message as it is, owned by nobody
	local md=$1 f n
	shift
	for f in "$@"; do
		n=$(date +%s).$RANDOM$RANDOM.interop
		cp "$f" "$md/tmp/$n"
		chown 65534:65534 "$md/tmp/$n"
		mv "$md/tmp/$n" "$md/new/$n"
	done
}
mbox_count() { grep -c '^From ' "$1" 2>/dev/null || true; }

# ---- services ----------------------------------------------------------

SVC=$W/svc
bash "$SRC/tests/services.sh" start "$SVC" >"$W/services.log" 2>&1 || { cat "$W/services.log"; echo "FAIL interop: services"; exit 1; }
set -a
. "$SVC/env"
set +a
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$W/key.pem" -out "$W/cert.pem" >/dev/null 2>&1
chmod 644 "$W/key.pem" "$W/cert.pem"

DB=""
DBNAME=""
sql() { psql "$DB" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
fresh_db() {
	DBNAME=interop_$1_$$
	PGOPTIONS="-c client_min_messages=warning" psql "$BOUNCER_TEST_PG_ADMIN" -qAt \
	    -c "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" -c "CREATE DATABASE $DBNAME OWNER bouncer" >/dev/null
	DB=${BOUNCER_TEST_PG/\/bouncer\?//$DBNAME?}
}

# ---- servers: start_NAME sets PORT (implicit TLS), STLS_PORT ("" when
# the server offers no STLS), USER, PASS; seed_NAME FILE...; count_NAME

start_dovecot() {
	PORT=$BOUNCER_TEST_POP3S_PORT
	STLS_PORT=$BOUNCER_TEST_POP3_STLS_PORT
	USER=bounces5 PASS=secret5
	CA=$BOUNCER_TEST_POP3_CA
	DOVE_MD=$BOUNCER_TEST_MAILDIR_ROOT/$USER/Maildir
	DOVECOT_VERSION=$(dovecot --version 2>/dev/null | cut -d' ' -f1)
	LABEL="Dovecot ${DOVECOT_VERSION:-2.3}"
	return 0
}
seed_dovecot() {
	local f n
	for f in "$@"; do
		n=$(basename "$f").$$.$RANDOM
		cp "$f" "$DOVE_MD/tmp/$n"
		chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$DOVE_MD/tmp/$n"
		mv "$DOVE_MD/tmp/$n" "$DOVE_MD/new/$n"
	done
}
count_dovecot() { find "$DOVE_MD/new" "$DOVE_MD/cur" -type f | wc -l; }

start_mailutils() {
	local d=$W/mailutils
	unpack mailutils || return 1
	mkdir -p "$d/pw" "$d/mail" "$d/lock"
	USER=bounces@interop.test PASS=mu-$RANDOM$RANDOM
	echo "bounces:$(openssl passwd -6 "$PASS"):65534:65534::$d/mail:/bin/false" >"$d/pw/interop.test"
	# virtdomain users read DIR/INBOX of the home in their passwd line;
	# a Maildir there keeps each message byte for byte
	MU_MD=$d/mail/INBOX
	mkdir -p "$MU_MD/new" "$MU_MD/cur" "$MU_MD/tmp"
	chown -R 65534:65534 "$d/mail"
	PORT=$(free_port) STLS_PORT=$(free_port)
	CA=$W/cert.pem
	cat >"$d/pop3d.conf" <<-CONF
	mode daemon;
	foreground yes;
	pidfile $d/pid;
	stat-file $d/stat;
	logging { syslog no; };
	locking { type kernel; };
	mandatory-locking { enable no; lock-directory $d/lock; };
	auth { authorization virtdomain; authentication generic; };
	virtdomain { passwd-dir $d/pw; };
	tls-file-checks { key-file none; cert-file none; ca-file none; };
	tls { ssl-certificate-file $W/cert.pem; ssl-key-file $W/key.pem; };
	server 127.0.0.1:$PORT { tls-mode connection; };
	server 127.0.0.1:$STLS_PORT { tls-mode stls; };
	CONF
	LD_LIBRARY_PATH=$(libpath mailutils) "$CACHE/root-mailutils/usr/sbin/pop3d" \
	    --config-file="$d/pop3d.conf" >"$d/log" 2>&1 &
	PIDS+=($!)
	wait_port "$PORT" && wait_port "$STLS_PORT" || { cat "$d/log"; return 1; }
	LABEL="GNU Mailutils $(LD_LIBRARY_PATH=$(libpath mailutils) "$CACHE/root-mailutils/usr/sbin/pop3d" --version 2>/dev/null | sed -n '1s/.* //p')"
	return 0
}
seed_mailutils() { maildir_add "$MU_MD" "$@"; }
count_mailutils() { find "$MU_MD/new" "$MU_MD/cur" -type f | wc -l; }

# popa3d: plain text only, in inetd mode behind tlsfront.py; it logs in
# system users through PAM and reads /var/mail/USER, so a system user
# (bouncerd-interop) and popa3d's own user and chroot are created for the
# run when missing, and removed again.
POPA_MADE=()
start_popa3d() {
	unpack popa3d || return 1
	USER=bouncerd-interop PASS=pa-$RANDOM$RANDOM
	if ! id popa3d >/dev/null 2>&1; then
		useradd -r -M -d /var/lib/popa3d -s /usr/sbin/nologin popa3d && POPA_MADE+=(user:popa3d)
	fi
	[ -d /var/lib/popa3d ] || { mkdir -p /var/lib/popa3d && POPA_MADE+=(dir:/var/lib/popa3d); }
	if ! id "$USER" >/dev/null 2>&1; then
		useradd -M -d "$W" -s /usr/sbin/nologin "$USER" && POPA_MADE+=(user:$USER)
	fi
	echo "$USER:$PASS" | chpasswd
	POPA_MBOX=/var/mail/$USER
	[ -e "$POPA_MBOX" ] || POPA_MADE+=(file:$POPA_MBOX)
	: >"$POPA_MBOX"
	chown "$USER:mail" "$POPA_MBOX" 2>/dev/null || chown "$USER" "$POPA_MBOX"
	chmod 660 "$POPA_MBOX"
	python3 "$SRC/tests/interop/tlsfront.py" --cert "$W/cert.pem" --key "$W/key.pem" \
	    --port-file "$W/popa3d.port" -- "$CACHE/root-popa3d/usr/sbin/popa3d" >"$W/popa3d.log" 2>&1 &
	PIDS+=($!)
	local i
	for i in $(seq 100); do [ -s "$W/popa3d.port" ] && break; sleep 0.1; done
	PORT=$(cat "$W/popa3d.port") STLS_PORT=""
	CA=$W/cert.pem
	LABEL="popa3d $(dpkg-deb -f "$CACHE"/debs/popa3d_*.deb Version | sed 's/-.*//') (TLS front)"
	return 0
}
seed_popa3d() { mbox_append "$POPA_MBOX" "$@"; }
count_popa3d() { mbox_count "$POPA_MBOX"; }
stop_popa3d() {
	local m
	for m in "${POPA_MADE[@]}"; do
		case $m in
		user:*) userdel "${m#user:}" >/dev/null 2>&1 ;;
		dir:*) rmdir "${m#dir:}" 2>/dev/null ;;
		file:*) rm -f "${m#file:}" ;;
		esac
	done
	POPA_MADE=()
}

# ---- the passes ---------------------------------------------------------

# What the server serves, fetched with Python's poplib (USER/PASS, no
# DELE) into DIR/NNNN.eml in message-number order; prints how many differ
# from the seeded files other than in their line ends.
dump_server() {	# PORT DIR
	python3 - "$1" "$2" "$USER" "$PASS" "$CA" "$W/msgs" <<'PY'
import os, poplib, ssl, sys
port, out, user, pw, ca, src = sys.argv[1:]
os.makedirs(out, exist_ok=True)
norm = lambda b: b.replace(b"\r", b"").rstrip(b"\n")
stored = {norm(open(os.path.join(src, f), "rb").read()) for f in os.listdir(src)}
p = poplib.POP3_SSL("127.0.0.1", int(port),
                    context=ssl.create_default_context(cafile=ca))
p.user(user)
p.pass_(pw)
n = len(p.list()[1])
altered = 0
for i in range(1, n + 1):
    data = b"\r\n".join(p.retr(i)[1]) + b"\r\n"
    with open(os.path.join(out, "%04d.eml" % i), "wb") as f:
        f.write(data)
    if norm(data) not in stored:
        altered += 1
p.quit()
print(altered)
PY
}
# Twice: a server may rewrite a message the first time it serves it
# (Maildir new/ to cur/, status headers); the second copy is what
# bouncerd gets.
dump_twice() {	# PORT DIR
	dump_server "$1" "$2.first" >/dev/null && dump_server "$1" "$2"
}
served() {	# DIR -> "recipient|reason" lines of what bounce-parse finds there
	"$BP" --format tsv "$1"/*.eml | awk -F'\t' 'NR > 1 && $10 != "" { print $10 "|" $3 }' | sort
}

conf() {	# NAME PORT TLS MODE -> config on stdout
	cat <<-YAML
	database:
	  url: "$DB"
	  batch_size: 50
	log:
	  level: debug
	defaults:
	  interval: 10m
	  jitter: 0s
	  max_messages: 1000
	  connect_timeout: 10s
	  command_timeout: 60s
	mailboxes:
	  - name: $1
	    host: 127.0.0.1
	    port: $2
	    tls: $3
	    ca_file: $CA
	    username: "$USER"
	    password: "$PASS"
	    after_processing: $4
	YAML
}

records() {	# MAILBOX -> "recipient|reason" lines, sorted
	sql "SELECT x.recipient || '|' || x.reason FROM bounces x JOIN messages m ON m.id = x.message_id
	    JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = '$1'" | sort
}

once() {	# NAME CONFIG LOG -> runs one pass, checks its exit status
	"$BIN" -c "$2" --once 2>"$3"
	check "$1: exit status" 0 $?
}

logval() {	# LOG-LINE KEY -> the value, quoted or not
	if [[ $1 == *" $2=\""* ]]; then
		sed -n "s/.* $2=\"\([^\"]*\)\".*/\1/p" <<<"$1"
	else
		sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
	fi
}

field() { grep -o " $2=[^ ]*" "$1" | tail -n 1 | cut -d= -f2; }

ROWS=()
run_server() {
	local s=$1 t0 secs want got mech capa dele stls_note="not offered"
	t0=$SECONDS
	if ! "start_$s"; then
		fail "$s: start" "could not start the server"
		return
	fi
	fresh_db "$s"
	# 1: 200 bounces, implicit TLS, delete
	"seed_$s" $(msgs 1 200)
	check "$s: 200 seeded" 200 "$("count_$s")"
	altered=$(dump_twice "$PORT" "$W/$s-served1")
	conf del "$PORT" implicit delete >"$W/$s-del.yaml"
	once "$s: implicit TLS pass" "$W/$s-del.yaml" "$W/$s-1.log"
	check "$s: 200 fetched and recorded" "200 200" \
	    "$(field "$W/$s-1.log" fetched) $(field "$W/$s-1.log" recorded)"
	check "$s: mailbox emptied" 0 "$("count_$s")"
	served "$W/$s-served1" >"$W/want-200"
	records del >"$W/got-200"
	check "$s: records as bounce-parse finds them in what the server served ($(wc -l <"$W/want-200") rows)" "" \
	    "$(diff "$W/want-200" "$W/got-200" | head -n 5)"
	expected 1 200 >"$W/seeded-200"
	echo "INFO $s: $altered of 200 messages served other than stored (line ends aside); records differing from the stored files: $(diff "$W/seeded-200" "$W/got-200" | grep -c '^[<>]')"
	mech=$(grep ' logged in ' "$W/$s-1.log" | head -n 1)
	# 2: 50 more, STARTTLS where offered
	"seed_$s" $(msgs 201 250)
	dump_twice "$PORT" "$W/$s-served2" >/dev/null
	if [ -n "$STLS_PORT" ]; then
		conf del "$STLS_PORT" starttls delete >"$W/$s-del2.yaml"
		stls_note=used
	else
		cp "$W/$s-del.yaml" "$W/$s-del2.yaml"
	fi
	once "$s: second pass ($([ -n "$STLS_PORT" ] && echo STARTTLS || echo implicit TLS))" "$W/$s-del2.yaml" "$W/$s-2.log"
	check "$s: second pass fetched the 50 new" "50 50" \
	    "$(field "$W/$s-2.log" fetched) $(field "$W/$s-2.log" recorded)"
	check "$s: mailbox emptied again" 0 "$("count_$s")"
	{ served "$W/$s-served1"; served "$W/$s-served2"; } | sort >"$W/want-250"
	records del >"$W/got-250"
	check "$s: records of both passes" "" "$(diff "$W/want-250" "$W/got-250" | head -n 5)"
	# 3: keep mode
	"seed_$s" $(msgs 1 20)
	dump_twice "$PORT" "$W/$s-served3" >/dev/null
	conf keep "$PORT" implicit keep >"$W/$s-keep.yaml"
	once "$s: keep pass" "$W/$s-keep.yaml" "$W/$s-3.log"
	check "$s: keep pass recorded 20" 20 "$(field "$W/$s-3.log" recorded)"
	check "$s: keep mode kept them" 20 "$("count_$s")"
	once "$s: second keep pass" "$W/$s-keep.yaml" "$W/$s-4.log"
	check "$s: second keep pass fetched nothing" "20 0" \
	    "$(field "$W/$s-4.log" listed) $(field "$W/$s-4.log" fetched)"
	check "$s: still kept" 20 "$("count_$s")"
	served "$W/$s-served3" >"$W/want-20"
	records keep >"$W/got-20"
	check "$s: keep records" "" "$(diff "$W/want-20" "$W/got-20" | head -n 5)"
	check "$s: no failed message" 0 "$(sql "SELECT count(*) FROM messages WHERE outcome <> 'recorded'")"
	capa=$(logval "$mech" capa)
	dele=$(logval "$mech" dele)
	secs=$((SECONDS - t0))
	ROWS+=("| $LABEL | $altered | ${capa:-(no CAPA)} | $(logval "$mech" mechanism) | $(logval "$mech" apop_greeting) | $dele | $stls_note | $secs s |")
	declare -F "stop_$s" >/dev/null && "stop_$s"
	psql "$BOUNCER_TEST_PG_ADMIN" -qAt -c "DROP DATABASE IF EXISTS $DBNAME WITH (FORCE)" >/dev/null 2>&1
}

echo "interop: bounces from $SOURCE"
T0=$SECONDS
for s in $SERVERS; do
	run_server "$s"
done
echo
echo "| server | served altered (of 200) | CAPA | login | APOP greeting | DELE | STARTTLS | time |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "interop: $((SECONDS - T0)) s"
[ "$FAILS" -eq 0 ]
