#!/usr/bin/env bash
# services.sh - throwaway PostgreSQL and Dovecot POP3S on loopback, for the
# integration tests, the benchmarks and `make demo`.
#
#   tests/services.sh start DIR    fresh instances under DIR, settings in DIR/env
#   tests/services.sh stop DIR     stops both (by the PIDs in DIR/pids)
#   tests/services.sh status DIR
#
# Must run as root (PostgreSQL runs as "postgres", mail as MAIL_USER, by
# default "nobody").  Ports are random free ones in 20000-59999 unless
# PG_PORT, POP3S_PORT or POP3_PORT are set.  Nothing outside DIR is touched:
# the system PostgreSQL and Dovecot (if any) are left alone.
# PG_SHARED_BUFFERS (e.g. 2GB) sets PostgreSQL's shared_buffers; unset, the
# server's default (128MB) is kept.  PG_HUGE_PAGES=1 reserves the huge pages
# PostgreSQL's shared memory needs (vm.nr_hugepages is raised by that many,
# and lowered again by `stop`) and starts it with huge_pages = on: with 4 kB
# pages every new backend takes a page fault on each page of shared buffers
# it touches first, which dominates work spread over a large database.  The
# one exception to "nothing outside DIR is touched"; if the kernel cannot
# find the pages, the server starts without them and this says so.
#
# DIR/env holds KEY=value lines (no quotes) for `set -a; . DIR/env`:
#   BOUNCER_TEST_PG            libpq URI of the test database (password auth)
#   BOUNCER_TEST_PG_ADMIN      URI of the superuser (for restarts, resets)
#   BOUNCER_TEST_PG_CTL        "pg_ctl -D ..." prefix, run as postgres
#   BOUNCER_TEST_POP3S_HOST/PORT, BOUNCER_TEST_POP3_STLS_PORT
#   BOUNCER_TEST_POP3_CA       CA certificate (self-signed) of the server
#   BOUNCER_TEST_POP3_USERS    user:password,user:password,...
#   BOUNCER_TEST_MAILDIR_ROOT  DIR/dovecot/mail (USER/Maildir/{new,cur,tmp})
#   BOUNCER_TEST_MAIL_UID/GID  owner of the Maildirs (chown dropped mail)
#   BOUNCER_TEST_DOVECOT_LOG   the server log (connection counting)
#
# Notes: Dovecot treats 127.0.0.1 -> 127.0.0.1 as a secure connection and
# then allows plaintext logins; tests of "TLS required" connect from
# 127.0.0.2.  A daemonised Dovecot keeps its stdio: we give it files, never
# a pipe, or a caller reading our output would never see EOF.
set -euo pipefail

PROG=services.sh
USERS=${BOUNCER_POP3_USERS:-bounces1:secret1,bounces2:secret2,bounces3:secret3,bounces4:secret4,bounces5:secret5}
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }

is_running() {	# PID -> alive and not a zombie
	local s
	[ -r "/proc/$1/stat" ] || return 1
	s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$s" ] && [ "$s" != Z ]
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

TAKEN=" "
free_port() {	# VAR -> value of $VAR, or a random free port
	local v=${!1:-} p i
	if [ -n "$v" ]; then
		port_in_use "$v" && die "$1=$v is in use"
		echo "$v"; return
	fi
	for i in $(seq 1 100); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! port_in_use "$p" && [[ $TAKEN != *" $p "* ]]; then
			echo "$p"; return
		fi
	done
	die "no free port for $1"
}

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_pg() { (cd "$DIR/pg" && runuser -u postgres -- "$@"); }

start_pg() {
	local bin pw
	bin=$(pgbin)
	[ -x "$bin/initdb" ] || die "PostgreSQL server binaries not found"
	mkdir -p "$DIR/pg/sock"
	chown -R postgres:postgres "$DIR/pg"
	chmod 700 "$DIR/pg"
	pw=$(openssl rand -hex 12)
	printf '%s\n' "$pw" >"$DIR/pg/admin.pw"
	chown postgres "$DIR/pg/admin.pw"; chmod 600 "$DIR/pg/admin.pw"
	as_pg "$bin/initdb" -D "$DIR/pg/data" -U postgres --pwfile="$DIR/pg/admin.pw" \
	    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
	    >"$DIR/pg/initdb.log" 2>&1 || { cat "$DIR/pg/initdb.log" >&2; die "initdb failed"; }
	cat >>"$DIR/pg/data/postgresql.conf" <<-CONF
	listen_addresses = '127.0.0.1'
	port = $PG_PORT
	unix_socket_directories = '$DIR/pg/sock'
	max_connections = 200
	fsync = ${PG_FSYNC:-off}
	synchronous_commit = ${PG_FSYNC:-off}
	full_page_writes = ${PG_FSYNC:-off}
	CONF
	if [ -n "${PG_SHARED_BUFFERS:-}" ]; then
		echo "shared_buffers = $PG_SHARED_BUFFERS" >>"$DIR/pg/data/postgresql.conf"
	fi
	[ "${PG_HUGE_PAGES:-0}" = 1 ] && reserve_huge_pages "$bin"
	as_pg "$bin/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/postgres.log" -w -t 60 start \
	    </dev/null >/dev/null || { tail -n 20 "$DIR/pg/postgres.log" >&2; die "pg_ctl start failed"; }
	echo "pg $(head -n 1 "$DIR/pg/data/postmaster.pid")" >>"$DIR/pids"
	psql "host=$DIR/pg/sock port=$PG_PORT user=postgres dbname=postgres" -v ON_ERROR_STOP=1 -q \
	    -c "CREATE ROLE bouncer LOGIN CREATEDB PASSWORD 'bouncerpw'" \
	    -c "CREATE DATABASE bouncer OWNER bouncer" >/dev/null || die "creating the test database failed"
	PG_ADMIN_PW=$pw
	PG_BIN=$bin
}

# Raises vm.nr_hugepages by what the configured server needs, records the
# increase in DIR/pg/hugepages for cmd_stop, and turns huge_pages on.
reserve_huge_pages() {
	local need cur got
	need=$(as_pg "$1/postgres" -D "$DIR/pg/data" -C shared_memory_size_in_huge_pages) ||
	    die "cannot ask PostgreSQL how many huge pages it needs"
	cur=$(cat /proc/sys/vm/nr_hugepages)
	echo $((cur + need)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
	got=$(cat /proc/sys/vm/nr_hugepages)
	if [ $((got - cur)) -lt "$need" ]; then
		echo "$cur" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
		say "warning: the kernel gave $((got - cur)) of the $need huge pages PostgreSQL needs; starting without them"
		return 0
	fi
	echo $((got - cur)) >"$DIR/pg/hugepages"
	echo "huge_pages = on" >>"$DIR/pg/data/postgresql.conf"
}

release_huge_pages() {
	local n cur
	[ -r "$DIR/pg/hugepages" ] || return 0
	n=$(cat "$DIR/pg/hugepages"); cur=$(cat /proc/sys/vm/nr_hugepages)
	[ "$n" -gt 0 ] 2>/dev/null &&
	    echo $((cur > n ? cur - n : 0)) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
	rm -f "$DIR/pg/hugepages"
}

start_dovecot() {
	local d=$DIR/dovecot pair u i
	mkdir -p "$d/run" "$d/state" "$d/mail"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
	    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
	    -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null || die "openssl req failed"
	# A second, valid certificate for a name the tests never connect to:
	# "wrong host name" is checked against it.
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=wrong.example \
	    -addext "subjectAltName=DNS:wrong.example" \
	    -keyout "$d/wrong-key.pem" -out "$d/wrong-cert.pem" 2>/dev/null || die "openssl req failed"
	chmod 600 "$d/key.pem" "$d/wrong-key.pem"
	: >"$d/passwd"
	for pair in ${USERS//,/ }; do
		u=${pair%%:*}
		echo "$u:{PLAIN}${pair#*:}" >>"$d/passwd"
		mkdir -p "$d/mail/$u/Maildir/new" "$d/mail/$u/Maildir/cur" "$d/mail/$u/Maildir/tmp"
	done
	chmod 644 "$d/passwd"
	chown -R "$MAIL_UID:$MAIL_GID" "$d/mail"
	cat >"$d/dovecot.conf" <<-CONF
	# generated by tests/services.sh
	protocols = pop3
	listen = 127.0.0.1
	base_dir = $d/run
	state_dir = $d/state
	log_path = $d/dovecot.log
	info_log_path = $d/dovecot.log
	default_internal_user = dovecot
	default_internal_group = dovecot
	default_login_user = dovenull
	ssl = required
	ssl_cert = <$d/cert.pem
	ssl_key = <$d/key.pem
	ssl_min_protocol = TLSv1.2
	disable_plaintext_auth = yes
	auth_mechanisms = plain
	auth_failure_delay = 0
	login_trusted_networks =
	mail_max_userip_connections = 50
	passdb {
	  driver = passwd-file
	  args = scheme=PLAIN username_format=%u $d/passwd
	}
	userdb {
	  driver = static
	  args = uid=$MAIL_UID gid=$MAIL_GID home=$d/mail/%u
	}
	first_valid_uid = $MAIL_UID
	first_valid_gid = $MAIL_GID
	mail_location = maildir:~/Maildir
	pop3_uidl_format = %08Xu%08Xv
	service pop3-login {
	  inet_listener pop3 {
	    port = $POP3_PORT
	  }
	  inet_listener pop3s {
	    port = $POP3S_PORT
	    ssl = yes
	  }
	  process_min_avail = 1
	}
	CONF
	dovecot -c "$d/dovecot.conf" </dev/null >"$d/startup.log" 2>&1 ||
	    { cat "$d/startup.log" "$d/dovecot.log" >&2 2>/dev/null; die "dovecot failed to start"; }
	echo "dovecot $(cat "$d/run/master.pid")" >>"$DIR/pids"
	pair=${USERS%%,*}
	for i in $(seq 1 100); do
		if curl -sS --max-time 5 --cacert "$d/cert.pem" -o /dev/null \
		    "pop3s://${pair%%:*}:${pair#*:}@127.0.0.1:$POP3S_PORT/" 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	tail -n 20 "$d/dovecot.log" >&2 || true
	die "dovecot does not answer on 127.0.0.1:$POP3S_PORT"
}

write_env() {
	cat >"$DIR/env.tmp" <<-ENV
	BOUNCER_TEST_DIR=$DIR
	BOUNCER_TEST_PG=postgresql://bouncer:bouncerpw@127.0.0.1:$PG_PORT/bouncer?sslmode=disable
	BOUNCER_TEST_PG_ADMIN=postgresql://postgres:$PG_ADMIN_PW@127.0.0.1:$PG_PORT/postgres?sslmode=disable
	BOUNCER_TEST_PG_PORT=$PG_PORT
	BOUNCER_TEST_PG_DATA=$DIR/pg/data
	BOUNCER_TEST_PG_BIN=$PG_BIN
	BOUNCER_TEST_POP3S_HOST=127.0.0.1
	BOUNCER_TEST_POP3S_PORT=$POP3S_PORT
	BOUNCER_TEST_POP3_STLS_PORT=$POP3_PORT
	BOUNCER_TEST_POP3_CA=$DIR/dovecot/cert.pem
	BOUNCER_TEST_POP3_WRONG_CA=$DIR/dovecot/wrong-cert.pem
	BOUNCER_TEST_POP3_USERS=$USERS
	BOUNCER_TEST_MAILDIR_ROOT=$DIR/dovecot/mail
	BOUNCER_TEST_MAIL_UID=$MAIL_UID
	BOUNCER_TEST_MAIL_GID=$MAIL_GID
	BOUNCER_TEST_DOVECOT_CONF=$DIR/dovecot/dovecot.conf
	BOUNCER_TEST_DOVECOT_LOG=$DIR/dovecot/dovecot.log
	ENV
	mv "$DIR/env.tmp" "$DIR/env"
	chmod 644 "$DIR/env"
}

cmd_start() {
	local mu
	[ -f "$DIR/pids" ] && die "$DIR/pids exists: run '$0 stop $DIR' first"
	sh "$HERE/../docker/deps.sh" test >&2
	mkdir -p "$DIR"
	chmod a+x "$DIR"
	rm -rf "$DIR/pg" "$DIR/dovecot" "$DIR/env"
	mu=${MAIL_USER:-nobody}
	MAIL_UID=$(id -u "$mu") && MAIL_GID=$(id -g "$mu") || die "no user $mu"
	[ "$MAIL_UID" != 0 ] || die "Dovecot refuses uid 0 for mail"
	for u in postgres "$mu"; do
		runuser -u "$u" -- test -x "$DIR" || die "$DIR is not reachable by user $u (use a directory under /tmp or a world-searchable path)"
	done
	PG_PORT=$(free_port PG_PORT); TAKEN="$TAKEN$PG_PORT "
	POP3S_PORT=$(free_port POP3S_PORT); TAKEN="$TAKEN$POP3S_PORT "
	POP3_PORT=$(free_port POP3_PORT)
	trap 'say "start failed; stopping what did start"; cmd_stop || true' EXIT
	: >"$DIR/pids"
	start_pg
	start_dovecot
	write_env
	trap - EXIT
	say "postgres on 127.0.0.1:$PG_PORT, dovecot pop3s on 127.0.0.1:$POP3S_PORT (pop3+STLS $POP3_PORT); settings in $DIR/env"
}

stop_pid() {	# NAME PID SIGNAL
	local n
	is_running "$2" || return 0
	kill "-$3" "$2" 2>/dev/null || true
	for n in $(seq 1 300); do
		is_running "$2" || { say "$1 stopped"; return 0; }
		sleep 0.1
	done
	say "$1 (pid $2) did not stop: SIGKILL"
	kill -KILL "$2" 2>/dev/null || true
}

cmd_stop() {
	local name pid
	[ -f "$DIR/pids" ] || return 0
	while read -r name pid; do
		case $name in
		dovecot) stop_pid dovecot "$pid" TERM ;;
		pg)
			# a test may have restarted the server: its current
			# PID is in postmaster.pid, not the one saved at start
			if [ -r "$DIR/pg/data/postmaster.pid" ]; then
				stop_pid postgres "$(head -n 1 "$DIR/pg/data/postmaster.pid")" INT
			fi
			stop_pid postgres "$pid" INT ;;
		esac
	done < <(tac "$DIR/pids")
	# Any stray process still running from DIR (a dovecot child, a backend)
	pkill -KILL -f -- "$DIR/dovecot/" 2>/dev/null || true
	release_huge_pages
	rm -f "$DIR/pids"
}

cmd_status() {
	local name pid
	[ -f "$DIR/pids" ] || { echo "not running"; return 1; }
	while read -r name pid; do
		if is_running "$pid"; then echo "$name running (pid $pid)"; else echo "$name NOT running (pid $pid)"; fi
	done <"$DIR/pids"
}

[ $# -eq 2 ] || { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root"
DIR=$(readlink -m -- "$2")
[ "$DIR" != / ] || die "refusing DIR=/"
case $DIR in *[!A-Za-z0-9/._-]*) die "DIR must not contain spaces or special characters" ;; esac
case $1 in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) die "unknown command $1" ;;
esac
