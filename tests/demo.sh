#!/usr/bin/env bash
# demo.sh start|stop - `make demo` / `make demo-stop`.
#
# start: throwaway PostgreSQL + Dovecot POP3S (tests/services.sh) under
# ./.run/, a mailbox seeded with the bounces in tests/fixtures/demo/ (their
# dates moved to the last few days), one `bouncerd --once` pass, then the
# bounces table and the suppression list.  Every step is printed.  Running
# it again starts from scratch.
# stop: stops the services and removes ./.run/.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"
RUN=$SRC/.run
BIN=$SRC/${B:-build}/bin/bouncerd

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

svc_dir() {
	# The services run as the users postgres and nobody, who must be able
	# to reach their directory; a checkout under /root is not reachable,
	# so the state then lives in /tmp and .run/services points there.
	if [ -L "$RUN/services" ] || [ -d "$RUN/services" ]; then
		readlink -f "$RUN/services"
		return
	fi
	mkdir -p "$RUN"
	if runuser -u postgres -- test -x "$RUN" 2>/dev/null &&
	    runuser -u nobody -- test -x "$RUN" 2>/dev/null; then
		mkdir -p "$RUN/services"
		echo "$RUN/services"
	else
		local d
		d=$(mktemp -d /tmp/bouncerd-demo.XXXXXX)
		ln -s "$d" "$RUN/services"
		echo "$d"
	fi
}

cmd_stop() {
	if [ -e "$RUN/services" ]; then
		local d
		d=$(readlink -f "$RUN/services")
		step "stopping PostgreSQL and Dovecot ($d)"
		bash tests/services.sh stop "$d" || true
		[ "$d" != "$RUN/services" ] && rm -rf "$d"
	fi
	rm -rf "$RUN"
	echo "demo stopped; nothing of it is left running"
}

shift_dates() {	# FILE -> stdout, fixture dates moved next to today
	sed -e "s/Mon, 16 Nov 2026/$(date -u -d '6 days ago' '+%a, %d %b %Y')/g" \
	    -e "s/16 Nov 2026/$(date -u -d '6 days ago' '+%d %b %Y')/g" \
	    -e "s/Tue, 17 Nov 2026/$(date -u -d '5 days ago' '+%a, %d %b %Y')/g" \
	    -e "s/Wed, 18 Nov 2026/$(date -u -d '4 days ago' '+%a, %d %b %Y')/g" "$1"
}

cmd_start() {
	[ "$(id -u)" = 0 ] || { echo "make demo must run as root (it starts PostgreSQL and Dovecot)" >&2; exit 1; }
	step "checking Debian packages (PostgreSQL, Dovecot, openssl, curl)"
	sh docker/deps.sh test
	[ -x "$BIN" ] || { echo "$BIN is missing: run make first" >&2; exit 1; }
	if [ -e "$RUN" ]; then
		step "a previous demo exists: stopping it first"
		cmd_stop
	fi
	local d
	d=$(svc_dir)
	step "starting PostgreSQL and Dovecot POP3S on loopback (state in $d)"
	bash tests/services.sh start "$d"
	set -a; . "$d/env"; set +a

	local user=bounces1 pass=secret1 md f n=0
	md=$BOUNCER_TEST_MAILDIR_ROOT/$user/Maildir
	step "seeding mailbox '$user' with the demo bounces (tests/fixtures/demo)"
	for f in tests/fixtures/demo/*.eml; do
		n=$((n + 1))
		shift_dates "$f" >"$md/tmp/demo.$n.$(basename "$f")"
		chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$md/tmp/demo.$n.$(basename "$f")"
		mv "$md/tmp/demo.$n.$(basename "$f")" "$md/new/"
		echo "  $(basename "$f")"
	done

	step "writing $RUN/bouncerd.yaml"
	printf '%s\n' "$pass" >"$RUN/pop3-password"
	chmod 600 "$RUN/pop3-password"
	cat >"$RUN/bouncerd.yaml" <<-YAML
	# demo configuration written by tests/demo.sh
	database:
	  url: "$BOUNCER_TEST_PG"
	log:
	  level: info
	defaults:
	  interval: 5m
	  after_processing: delete
	mailboxes:
	  - name: demo
	    host: 127.0.0.1
	    port: $BOUNCER_TEST_POP3S_PORT
	    tls: implicit
	    ca_file: $BOUNCER_TEST_POP3_CA
	    username: $user
	    password_file: $RUN/pop3-password
	YAML
	"$BIN" -c "$RUN/bouncerd.yaml" --check-config >/dev/null

	step "bouncerd --once (one pass over every mailbox)"
	"$BIN" -c "$RUN/bouncerd.yaml" --once

	step "the bounces table"
	psql "$BOUNCER_TEST_PG" -P pager=off -c \
	    "SELECT recipient, class, reason, status, action, to_char(bounced_at, 'YYYY-MM-DD HH24:MI') AS bounced_at, campaign_id
	       FROM bounces ORDER BY bounced_at, recipient"
	step "the suppression list (who to stop mailing, and why)"
	psql "$BOUNCER_TEST_PG" -P pager=off -c "SELECT * FROM suppressions ORDER BY address"
	step "messages left in the mailbox after the pass"
	echo "  $(ls "$md/new" "$md/cur" | grep -c demo || true) (deleted after their records were committed)"
	cat <<-EOF

	The demo is still running: PostgreSQL at $BOUNCER_TEST_PG
	Try:  psql '$BOUNCER_TEST_PG'
	Stop it with:  make demo-stop
	EOF
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
*) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac
