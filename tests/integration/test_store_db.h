/*
 * test_store_db.h - helpers shared by the store's integration tests: a
 * fresh database per test program on the PostgreSQL of tests/services.sh
 * (BOUNCER_TEST_PG), one-value queries, and restarting the server.
 */
#ifndef BOUNCER_TEST_STORE_DB_H
#define BOUNCER_TEST_STORE_DB_H

/* The columns of the suppressions view that the rules compute (since
 * schema 026 the view also shows suppressed_since), for comparing the list
 * with the rules or across migrations. */
#define TDB_LIST_COLS \
	"address, domain, suppressed_because, reason, class, hard_bounces, " \
	"complaints, recent_soft_bounces, first_bounced_at, last_bounced_at"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store/store.h"
#include "test.h"
#include "base/util.h"

/* The URI of BOUNCER_TEST_PG with its database name replaced. */
static __attribute__((unused)) char *
tdb_uri(const char *base, const char *dbname)
{
	const char *q = strchr(base, '?');
	const char *end = q ? q : base + strlen(base);
	const char *slash = end;

	while (slash > base && *(slash - 1) != '/')
		slash--;
	return xasprintf("%.*s%s%s", (int)(slash - base), base, dbname,
	    q ? q : "");
}

static PGconn *
tdb_connect(const char *uri)
{
	PGconn *c = PQconnectdb(uri);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "connect %s: %s\n", uri, PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQclear(PQexec(c, "SET client_min_messages = warning"));
	return c;
}

/* Runs sql; returns 0 when it succeeded. */
static __attribute__((unused)) int
tdb_exec(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "sql failed: %s\n%s\n", sql,
		    PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* First value of the first row (caller frees), "(null)" for NULL,
 * "(none)" when there is no row, "(error)" on error. */
static __attribute__((unused)) char *
tdb_value(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	char *v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "sql failed: %s\n%s\n", sql,
		    PQresultErrorMessage(r));
		v = xstrdup("(error)");
	} else if (PQntuples(r) == 0)
		v = xstrdup("(none)");
	else if (PQgetisnull(r, 0, 0))
		v = xstrdup("(null)");
	else
		v = xstrdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* CHECK_SQL(conn, sql, want): the first value of sql is want. */
#define CHECK_SQL(c, sql, want) \
	do { \
		char *v__ = tdb_value((c), (sql)); \
		CHECK_STR(v__, (want)); \
		free(v__); \
	} while (0)

static __attribute__((unused)) long long
tdb_count(PGconn *c, const char *sql)
{
	char *v = tdb_value(c, sql);
	long long n = strtoll(v, NULL, 10);

	if (strcmp(v, "(error)") == 0)
		n = -1;
	free(v);
	return n;
}

/* Drops database name on c: 0 when it is gone.  WITH (FORCE) ends the
 * test's own sessions in it but fails, for a user that may not end an
 * autovacuum worker's session (PostgreSQL 15), while autovacuum works on
 * it, which it often does right after a test wrote to it; a plain DROP
 * stops autovacuum itself (waiting up to 5 s for other sessions).  Five
 * rounds of both. */
static __attribute__((unused)) int
tdb_drop_on(PGconn *c, const char *name)
{
	char *sql[2];
	int i, rc = -1;

	sql[0] = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
	sql[1] = xasprintf("DROP DATABASE IF EXISTS %s", name);
	for (i = 0; i < 10 && rc != 0; i++) {
		PGresult *r = PQexec(c, sql[i % 2]);

		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			rc = 0;
		else if (i == 9)
			fprintf(stderr, "%s: %s", sql[1], PQerrorMessage(c));
		PQclear(r);
		if (rc != 0 && i % 2)
			usleep(200 * 1000);
	}
	free(sql[0]);
	free(sql[1]);
	return rc;
}

/* Creates (or re-creates) database name; returns its URI or NULL. */
static __attribute__((unused)) char *
tdb_fresh(const char *name)
{
	const char *base = getenv("BOUNCER_TEST_PG");
	PGconn *c;
	char *sql, *uri = NULL;

	if (base == NULL)
		return NULL;
	c = tdb_connect(base);
	if (c == NULL)
		return NULL;
	if (tdb_drop_on(c, name) == 0) {
		sql = xasprintf("CREATE DATABASE %s", name);
		if (tdb_exec(c, sql) == 0)
			uri = tdb_uri(base, name);
		free(sql);
	}
	PQfinish(c);
	return uri;
}

static __attribute__((unused)) void
tdb_drop(const char *name)
{
	const char *base = getenv("BOUNCER_TEST_PG");
	PGconn *c;

	if (base == NULL || getenv("BOUNCER_TEST_KEEP_DB") != NULL)
		return;
	c = tdb_connect(base);
	if (c == NULL)
		return;
	tdb_drop_on(c, name);
	PQfinish(c);
}

/* Default options for tests: quick backoff, bounded attempts. */
static __attribute__((unused)) struct store_options
tdb_options(const char *uri)
{
	struct store_options o;

	memset(&o, 0, sizeof(o));
	o.conninfo = uri;
	o.batch_size = 100;
	o.raw_max_bytes = -1;
	o.backoff_initial_ms = 50;
	o.backoff_max_ms = 1000;
	o.reconnect_attempts = 60;
	o.connect_timeout_s = 5;
	return o;
}

/* Restarts the test PostgreSQL (fast shutdown); 0 on success.  The
 * postmaster's PID changes: the "pg" line of $BOUNCER_TEST_DIR/pids is
 * updated so that tests/services.sh stop still stops the server. */
static __attribute__((unused)) int
tdb_restart_pg(void)
{
	const char *data = getenv("BOUNCER_TEST_PG_DATA");
	const char *bin = getenv("BOUNCER_TEST_PG_BIN");
	const char *dir = getenv("BOUNCER_TEST_DIR");
	char *cmd;
	int rc;

	if (data == NULL || bin == NULL)
		return -1;
	cmd = xasprintf("cd /tmp && runuser -u postgres -- %s/pg_ctl -D %s "
	                "-l %s/../postgres.log -m fast -w -t 60 restart "
	                ">/dev/null 2>&1",
	    bin, data, data);
	rc = system(cmd);
	free(cmd);
	if (rc == 0 && dir != NULL) {
		cmd =
		    xasprintf("f='%s/pids'; p=$(head -n 1 '%s/postmaster.pid')"
		              " && [ -f \"$f\" ] && sed -i \"s/^pg .*/pg $p/\" "
		              "\"$f\"",
		        dir, data);
		if (system(cmd) != 0)
			rc = -1;
		free(cmd);
	}
	return rc == 0 ? 0 : -1;
}

/* Records B as the only recipient of message UIDL in MAILBOX (a complaint
 * message when B is a complaint, otherwise a bounce; size unknown), with
 * CAMPAIGN (may be NULL) as the campaign its original names. */
static __attribute__((unused)) int
tdb_record_bounce(struct store *s, int64_t mailbox, const char *uidl,
    const struct record_rcpt *b, const char *campaign, enum store_result *r,
    struct err *err)
{
	struct store_message m;
	struct record rec;

	memset(&m, 0, sizeof(m));
	memset(&rec, 0, sizeof(rec));
	rec.kind = b->cls == RECORD_CLASS_COMPLAINT ? RECORD_KIND_COMPLAINT
	                                            : RECORD_KIND_BOUNCE;
	rec.rcpts = (struct record_rcpt *)b;
	rec.nrcpts = 1;
	rec.campaign_id = campaign;
	m.mailbox_id = mailbox;
	m.uidl = uidl;
	m.size = -1;
	m.rec = &rec;
	return store_record(s, &m, r, err);
}

#endif
