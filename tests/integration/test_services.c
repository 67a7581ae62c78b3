/*
 * test_services.c - the two servers bouncerd talks to are reachable with
 * its own libraries: PostgreSQL through libpq (password auth, a round
 * trip, a temporary table), and a seeded Dovecot mailbox listed over POP3S
 * with the certificate verified against the test CA.  A wrong password
 * and an untrusted certificate each fail with a clear error.
 * Skips when tests/services.sh did not provide the environment.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pop3/pop3.h"
#include "test.h"
#include "test_dovecot.h"

#define USER "bounces5"
#define PASS "secret5"

static const char *pg;
static struct dovecot dv;

static void
t_postgres(void)
{
	PGconn *c = PQconnectdb(pg);
	PGresult *r = NULL;

	CHECK(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	if (PQstatus(c) != CONNECTION_OK)
		goto out;
	CHECK(PQserverVersion(c) >= 120000, "server %d", PQserverVersion(c));
	r = PQexec(c,
	    "CREATE TEMP TABLE t_services (n int); "
	    "INSERT INTO t_services VALUES (41), (1);");
	CHECK(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
	PQclear(r);
	r = PQexec(c, "SELECT sum(n) FROM t_services");
	CHECK(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		CHECK_STR(PQgetvalue(r, 0, 0), "42");
out:
	PQclear(r);
	PQfinish(c);
}

static void
t_postgres_wrong_password(void)
{
	char *conninfo = NULL;
	const char *at = strstr(pg, ":bouncerpw@");
	PGconn *c;

	if (at == NULL) {
		test_skip("BOUNCER_TEST_PG has an unexpected form");
		return;
	}
	conninfo = xasprintf("%.*s:wrongpw@%s", (int)(at - pg), pg,
	    at + strlen(":bouncerpw@"));
	c = PQconnectdb(conninfo);
	CHECK(PQstatus(c) == CONNECTION_BAD, "connected with a wrong password");
	CHECK(strstr(PQerrorMessage(c), "password authentication failed") !=
	        NULL,
	    "%s", PQerrorMessage(c));
	PQfinish(c);
	free(conninfo);
}

static void
opts(struct pop3_options *o)
{
	dovecot_opts(&dv, o, "services-" USER, USER, PASS);
}

static void
t_pop3s_listing(void)
{
	static const char *const names[] = {"4000.M1P1.svc", "4001.M2P1.svc"};
	static const char msg[] = "From: a@example.org\r\nSubject: s\r\n\r\n"
	                          "hello\r\n";
	struct pop3_options o;
	struct pop3 *p;
	struct pop3_entry *l = NULL;
	struct err err = {{0}};
	size_t n = 0, i;
	char path[512];

	for (i = 0; i < 2; i++)
		CHECK(dovecot_seed(&dv, USER, names[i], msg, strlen(msg)) == 0,
		    "seed: %s", strerror(errno));
	opts(&o);
	p = pop3_new(&o, &err);
	CHECK(p != NULL, "%s", err.msg);
	CHECK(pop3_connect(p, &err) == 0, "%s", err.msg);
	CHECK(pop3_scan(p, &l, &n, &err) == 0, "%s", err.msg);
	CHECK(n >= 2, "listed %zu messages", n);
	for (i = 0; i < n; i++) {
		CHECK(l[i].uidl[0] != '\0', "empty uidl");
		CHECK(l[i].size > 0, "size %lld", (long long)l[i].size);
	}
	CHECK(pop3_quit(p, &err) == 0, "%s", err.msg);
	pop3_free(&p);
	free(l);
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s/Maildir/new/%s",
		    dv.maildir_root, USER, names[i]);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s/Maildir/cur/%s:2,",
		    dv.maildir_root, USER, names[i]);
		unlink(path);
	}
}

static void
t_pop3s_wrong_password(void)
{
	struct pop3_options o;
	struct err err = {{0}};

	opts(&o);
	o.password = "wrong-secret";
	dovecot_refused(&o, POP3_ERR_AUTH, &err);
	CHECK(strstr(err.msg, "mailbox services-" USER ": connect: ") != NULL,
	    "%s", err.msg);
	CHECK(strstr(err.msg, "-ERR [AUTH]") != NULL, "%s", err.msg);
	CHECK(strstr(err.msg, "wrong-secret") == NULL, "%s", err.msg);
	printf("# wrong password: %s\n", err.msg);
}

static void
t_pop3s_untrusted_certificate(void)
{
	struct pop3_options o;
	struct err err = {{0}};

	opts(&o);
	o.ca_file = dv.wrong_ca;
	dovecot_refused(&o, POP3_ERR_TLS, &err);
	CHECK(strstr(err.msg, "mailbox services-" USER ": connect: ") != NULL,
	    "%s", err.msg);
	CHECK(strstr(err.msg, "certificate") != NULL, "%s", err.msg);
	printf("# untrusted certificate: %s\n", err.msg);
}

int
main(void)
{
	pg = getenv("BOUNCER_TEST_PG");
	dovecot_from_env(&dv);
	if (pg == NULL) {
		printf("SKIP services_postgres: BOUNCER_TEST_PG not set\n");
	} else {
		RUN(t_postgres);
		RUN(t_postgres_wrong_password);
	}
	if (!dovecot_ready(&dv, USER ":" PASS)) {
		printf("SKIP services_pop3s: BOUNCER_TEST_POP3* not set\n");
		return test_done();
	}
	RUN(t_pop3s_listing);
	RUN(t_pop3s_wrong_password);
	RUN(t_pop3s_untrusted_certificate);
	return test_done();
}
