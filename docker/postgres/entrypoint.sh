#!/bin/sh
# postgres-entrypoint - initialises $PGDATA on first start (superuser
# $POSTGRES_USER with the password from $POSTGRES_PASSWORD_FILE, database
# $POSTGRES_DB, password logins from the network), then runs PostgreSQL as
# the user postgres in the foreground.
set -eu
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pwfile=/var/run/postgresql/.pw
	if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
		cat "$POSTGRES_PASSWORD_FILE" >"$pwfile"
	else
		printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required}" >"$pwfile"
	fi
	chown postgres "$pwfile"
	as_pg initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
	    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
	rm -f "$pwfile"
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
	if [ "$db" != postgres ]; then
		as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
		as_pg psql -q -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
		as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	fi
	echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
