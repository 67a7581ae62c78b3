/*
 * test_store_failure.c - a failure report whose COMMIT reply is lost is
 * counted once: a TCP proxy between the store and PostgreSQL lets the
 * record_failure statement through, waits for the server to commit it and
 * answer, and closes the connection instead of passing the answer on.  The
 * store reconnects and sends the same report again.  Also: prune_gone and
 * the ledger filter read only what is on the server (EXPLAIN).
 * Skips without BOUNCER_TEST_PG.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store/store.h"
#include "test.h"
#include "test_store_db.h"
#include "base/util.h"

static char *uri;
static PGconn *db;

static struct proxy {
	int lfd;
	int port;
	int pg_port;
	volatile int armed; /* drop after the next record_failure reply */
	volatile int dropped;
} px;

/* 1 when buf holds a Bind of the prepared statement "record_failure"
 * (unnamed portal). */
static int
binds_record_failure(const char *b, size_t n)
{
	static const char name[] = "record_failure";
	size_t i, k = sizeof(name) - 1;

	for (i = 5; i + k + 2 <= n; i++)
		if (b[i - 5] == 'B' && b[i] == '\0' &&
		    memcmp(b + i + 1, name, k) == 0 && b[i + 1 + k] == '\0')
			return 1;
	return 0;
}

static void
pump(int cfd)
{
	struct sockaddr_in a;
	int sfd = socket(AF_INET, SOCK_STREAM, 0);
	int cutting = 0;
	char buf[65536];

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)px.pg_port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (sfd < 0 || connect(sfd, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto out;
	for (;;) {
		struct pollfd p[2] = {{.fd = cfd, .events = POLLIN},
		    {.fd = sfd, .events = POLLIN}};
		ssize_t n;

		if (poll(p, 2, 5000) <= 0)
			continue;
		if (p[0].revents) {
			n = read(cfd, buf, sizeof(buf));
			if (n <= 0)
				goto out;
			if (px.armed && binds_record_failure(buf, (size_t)n))
				cutting = 1;
			if (write(sfd, buf, (size_t)n) != n)
				goto out;
		}
		if (p[1].revents) {
			n = read(sfd, buf, sizeof(buf));
			if (n <= 0)
				goto out;
			if (cutting && memchr(buf, 'Z', (size_t)n) != NULL) {
				/* committed and answered: the answer is lost */
				px.armed = 0;
				px.dropped = 1;
				goto out;
			}
			if (!cutting && write(cfd, buf, (size_t)n) != n)
				goto out;
		}
	}
out:
	if (sfd >= 0)
		close(sfd);
	close(cfd);
}

static void *
proxy_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(px.lfd, NULL, NULL);

		if (c < 0)
			return NULL;
		pump(c);
	}
}

static int
proxy_start(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	pthread_t t;
	const char *pp = getenv("BOUNCER_TEST_PG_PORT");

	if (pp == NULL)
		return -1;
	px.pg_port = (int)strtol(pp, NULL, 10);
	px.lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (px.lfd < 0 || bind(px.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(px.lfd, 4) != 0 ||
	    getsockname(px.lfd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	px.port = ntohs(a.sin_port);
	if (pthread_create(&t, NULL, proxy_main, NULL) != 0)
		return -1;
	pthread_detach(t);
	return 0;
}

/* uri with the server's port replaced by the proxy's. */
static char *
proxied_uri(void)
{
	char from[32], *p, *out;

	snprintf(from, sizeof(from), ":%d/", px.pg_port);
	p = strstr(uri, from);
	if (p == NULL)
		return NULL;
	out = xasprintf("%.*s:%d/%s", (int)(p - uri), uri, px.port,
	    p + strlen(from));
	return out;
}

static void
t_failure_counted_once_when_commit_reply_lost(void)
{
	char *puri = proxied_uri();
	struct store_options o;
	struct store *s = NULL;
	struct err err = {""};
	struct store_failure f;
	int64_t mb = 0;
	int q = -1;

	CHECK(puri != NULL, "proxy URI");
	if (puri == NULL)
		return;
	o = tdb_options(puri);
	o.quarantine_after = 3;
	CHECK(store_open(&o, &s, &err) == 0, "%s", err.msg);
	CHECK(store_mailbox_id(s, "lost-reply", NULL, NULL, &mb, &err) == 0,
	    "%s", err.msg);
	memset(&f, 0, sizeof(f));
	f.mailbox_id = mb;
	f.uidl = "lost-1";
	f.error = "cannot decode";
	f.size = 10;
	/* pass 1: reported normally */
	CHECK(store_record_failure(s, &f, &q, &err) == 0, "%s", err.msg);
	CHECK_INT(q, 0);
	/* pass 2: the reply to the committed report is lost; the store
	 * reconnects and sends the same report again */
	px.armed = 1;
	CHECK(store_record_failure(s, &f, &q, &err) == 0, "%s", err.msg);
	CHECK_INT(px.dropped, 1);
	CHECK_INT(q, 0);
	CHECK_SQL(db,
	    "SELECT failures || ' ' || outcome FROM messages WHERE "
	    "uidl = 'lost-1'",
	    "2 failed");
	/* pass 3 counts again and quarantines, as it should */
	CHECK(store_record_failure(s, &f, &q, &err) == 0, "%s", err.msg);
	CHECK_INT(q, 1);
	CHECK_SQL(db,
	    "SELECT failures || ' ' || outcome FROM messages WHERE "
	    "uidl = 'lost-1'",
	    "3 quarantined");
	store_free(&s);
	free(puri);
}

/* The pass statements read the rows still on the server, not the
 * mailbox's history: 20,000 deleted rows, 50 on the server. */
static void
t_pass_reads_what_is_on_the_server(void)
{
	CHECK(tdb_exec(db,
	          "INSERT INTO mailboxes (name) VALUES ('history');"
	          "INSERT INTO messages (mailbox_id, uidl, deleted_at) "
	          "SELECT (SELECT id FROM mailboxes WHERE name = 'history'), "
	          "'old-' || g, now() FROM generate_series(1, 20000) g;"
	          "INSERT INTO messages (mailbox_id, uidl) "
	          "SELECT (SELECT id FROM mailboxes WHERE name = 'history'), "
	          "'new-' || g FROM generate_series(1, 50) g;"
	          "ANALYZE messages") == 0,
	    "fill");
	tdb_exec(db, "SET plan_cache_mode = force_generic_plan");
	tdb_exec(db,
	    "PREPARE pg(bigint, text[]) AS UPDATE messages m SET deleted_at ="
	    " now() WHERE m.mailbox_id = $1 AND m.deleted_at IS NULL AND NOT "
	    "EXISTS (SELECT 1 FROM unnest($2::text[]) AS u(uidl) WHERE "
	    "u.uidl = m.uidl)");
	{
		char *mb = tdb_value(db,
		    "SELECT id FROM mailboxes WHERE name = 'history'");
		char *arr = tdb_value(db,
		    "SELECT array_agg('new-' || g)::text FROM "
		    "generate_series(1, 50) g");
		char *sql = xasprintf("EXPLAIN EXECUTE pg(%s, '%s')", mb, arr);
		PGresult *r = PQexec(db, sql);
		int i, seq = 0, idx = 0;

		free(sql);
		free(arr);
		free(mb);

		for (i = 0; r && i < PQntuples(r); i++) {
			const char *l = PQgetvalue(r, i, 0);

			if (strstr(l, "Seq Scan on messages"))
				seq = 1;
			if (strstr(l, "messages_on_server_idx"))
				idx = 1;
		}
		CHECK(PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
		    PQresultErrorMessage(r));
		CHECK_INT(seq, 0);
		CHECK_INT(idx, 1);
		PQclear(r);
	}
	tdb_exec(db, "DEALLOCATE pg");
}

int
main(void)
{
	struct store_options o;
	struct store *s = NULL;
	struct err err = {""};

	if (getenv("BOUNCER_TEST_PG") == NULL) {
		printf("SKIP test_store_failure: BOUNCER_TEST_PG not set\n");
		return 0;
	}
	uri = tdb_fresh("bouncer_store_failure");
	if (uri == NULL || proxy_start() != 0) {
		printf("FAIL test_store_failure: no test database or proxy\n");
		return 1;
	}
	db = tdb_connect(uri);
	o = tdb_options(uri);
	if (db == NULL || store_open(&o, &s, &err) != 0 ||
	    store_migrate(s, NULL, &err) != 0) {
		printf("FAIL test_store_failure: setup: %s\n", err.msg);
		return 1;
	}
	store_free(&s);
	RUN(t_failure_counted_once_when_commit_reply_lost);
	RUN(t_pass_reads_what_is_on_the_server);
	PQfinish(db);
	tdb_drop("bouncer_store_failure");
	free(uri);
	return test_done();
}
