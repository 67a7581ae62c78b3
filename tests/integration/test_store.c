/*
 * test_store.c - the store against the real PostgreSQL of
 * tests/services.sh: migrations (fresh, re-run, two processes at once),
 * idempotent recording and replays, concurrent writers of one UIDL,
 * batches with a refused message, hostile text, failures and quarantine,
 * ledger states, deletion marks, pruning, mailbox locks, and PostgreSQL
 * restarted between and during writes.  Skips without BOUNCER_TEST_PG.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/schema_sql.h"
#include "store/store.h"
#include "store/store_int.h"
#include "test.h"
#include "test_store_db.h"
#include "base/util.h"

static char *uri; /* the test database */
static PGconn *db; /* a plain connection to it, for checks */
static int64_t mbox; /* a mailbox id */

static struct store *
open_store(void)
{
	struct store_options o = tdb_options(uri);
	struct store *s = NULL;
	struct err err = {""};

	if (store_open(&o, &s, &err) != 0)
		test_fail_at(__FILE__, __LINE__, "store_open: %s", err.msg);
	return s;
}

/* A message with nb bounce rows to r<k>-<uidl>@example.org. */
struct msgbuf {
	struct store_message m;
	struct record rec;
	struct record_rcpt b[4];
	char rcpt[4][128];
	char uidl[64];
};

/* Points the message at its own record and the record at its
 * recipients (again after the buffer was copied). */
static void
msg_link(struct msgbuf *mb)
{
	mb->m.rec = &mb->rec;
	mb->rec.rcpts = mb->b;
}

static void
make_msg(struct msgbuf *mb, int64_t mailbox, const char *uidl, int nb)
{
	int i;

	memset(mb, 0, sizeof(*mb));
	snprintf(mb->uidl, sizeof(mb->uidl), "%s", uidl);
	mb->m.mailbox_id = mailbox;
	mb->m.uidl = mb->uidl;
	mb->rec.kind = RECORD_KIND_BOUNCE;
	mb->rec.message_id = "<bounce@mx.example.net>";
	mb->rec.subject = "Undelivered Mail Returned to Sender";
	mb->rec.reporting_mta = "mx.example.net";
	mb->m.size = 2048;
	mb->m.raw = "From: MAILER-DAEMON\r\n\r\nbounce\r\n";
	mb->m.raw_len = strlen(mb->m.raw);
	for (i = 0; i < nb && i < 4; i++) {
		snprintf(mb->rcpt[i], sizeof(mb->rcpt[i]), "R%d-%s@Example.ORG",
		    i, uidl);
		mb->b[i].recipient = mb->rcpt[i];
		mb->b[i].recipient_source = "final_recipient";
		mb->b[i].final_recipient = mb->rcpt[i];
		mb->b[i].cls = RECORD_CLASS_HARD;
		mb->b[i].reason = "userunknown";
		mb->b[i].action = "failed";
		mb->b[i].status = "5.1.1";
		mb->b[i].reply_code = 550;
		mb->b[i].diagnostic = "550 5.1.1 user unknown";
	}
	mb->rec.nrcpts = (size_t)(nb < 4 ? nb : 4);
	msg_link(mb);
}

static void
t_migrate_fresh_and_rerun(void)
{
	struct store *s = open_store();
	struct err err = {""};
	int pending = -1, applied = -1, n = (int)store_migration_nsrcs;

	/* numbers may leave gaps: the highest is the last one */
	CHECK_INT(store_schema_version(),
	    store_migration_srcs[store_migration_nsrcs - 1].version);

	if (s == NULL)
		return;
	CHECK(n >= 2, "embedded migrations: %d", n);
	CHECK(store_pending_migrations(s, &pending, &err) == 0, "%s", err.msg);
	CHECK_INT(pending, n);
	/* counting pending migrations creates nothing */
	CHECK_SQL(db, "SELECT to_regclass('schema_migrations') IS NULL", "t");
	CHECK(store_migrate(s, &applied, &err) == 0, "%s", err.msg);
	CHECK_INT(applied, n);
	CHECK(store_pending_migrations(s, &pending, &err) == 0, "%s", err.msg);
	CHECK_INT(pending, 0);
	CHECK(store_migrate(s, &applied, &err) == 0, "%s", err.msg);
	CHECK_INT(applied, 0);
	CHECK_INT(tdb_count(db, "SELECT count(*) FROM schema_migrations"), n);
	CHECK_INT(tdb_count(db, "SELECT count(*) FROM settings"), 1);
	store_free(&s);
	CHECK(s == NULL, "store_free sets NULL");
	store_free(&s); /* NULL-safe */
}

static void
t_migrate_changed_file_is_an_error(void)
{
	struct store *s = open_store();
	struct err err = {""};
	int applied = -1;
	char *orig, *sql;

	if (s == NULL)
		return;
	orig = tdb_value(db,
	    "SELECT checksum FROM schema_migrations "
	    "WHERE version = 1");
	tdb_exec(db,
	    "UPDATE schema_migrations SET checksum = 'x' "
	    "WHERE version = 1");
	CHECK(store_migrate(s, &applied, &err) == -1, "accepted a change");
	CHECK(strstr(err.msg, "changed") != NULL, "%s", err.msg);
	tdb_exec(db,
	    "UPDATE schema_migrations SET checksum = "
	    "(SELECT checksum FROM schema_migrations WHERE version = "
	    "2) WHERE version = 1"); /* still wrong */
	CHECK(store_migrate(s, &applied, &err) == -1, "accepted a change");
	sql = xasprintf("UPDATE schema_migrations SET checksum = '%s' "
	                "WHERE version = 1",
	    orig);
	CHECK(tdb_exec(db, sql) == 0, "restore");
	CHECK(store_migrate(s, &applied, &err) == 0, "%s", err.msg);
	CHECK_INT(applied, 0);
	free(sql);
	free(orig);
	store_free(&s);
}

/* Four processes migrate one empty database at the same moment. */
static void
t_migrate_concurrently(void)
{
	char *u2 = tdb_fresh("bouncer_store_mig2");
	int fds[2], i, total = 0, ok = 1, n = (int)store_migration_nsrcs;
	pid_t pids[4];
	PGconn *c;

	if (u2 == NULL) {
		test_fail_at(__FILE__, __LINE__, "no second database");
		return;
	}
	if (pipe(fds) != 0)
		return;
	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct store_options o = tdb_options(u2);
			struct store *s = NULL;
			struct err err = {""};
			int applied = 0;
			char go;

			close(fds[1]);
			if (store_open(&o, &s, &err) != 0)
				_exit(100);
			if (read(fds[0], &go, 1) < 0)
				_exit(101);
			if (store_migrate(s, &applied, &err) != 0) {
				fprintf(stderr, "child: %s\n", err.msg);
				_exit(102);
			}
			store_free(&s);
			_exit(applied);
		}
	}
	close(fds[0]);
	usleep(200000);
	close(fds[1]); /* releases all children at once */
	for (i = 0; i < 4; i++) {
		int st = 0;

		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) >= 100)
			ok = 0;
		else
			total += WEXITSTATUS(st);
	}
	CHECK(ok, "a migrating process failed");
	CHECK_INT(total, n);
	c = tdb_connect(u2);
	if (c != NULL) {
		CHECK_INT(tdb_count(c,
		              "SELECT count(*) FROM schema_migrations"),
		    n);
		CHECK_INT(tdb_count(c, "SELECT count(*) FROM settings"), 1);
		PQfinish(c);
	}
	tdb_drop("bouncer_store_mig2");
	free(u2);
}

static void
t_mailbox_id_is_stable(void)
{
	struct store *s = open_store();
	struct err err = {""};
	int64_t a = 0, b = 0, c = 0;

	if (s == NULL)
		return;
	CHECK(store_mailbox_id(s, "bounces1", "127.0.0.1", "bounces1", &a,
	          &err) == 0,
	    "%s", err.msg);
	CHECK(store_mailbox_id(s, "bounces1", NULL, NULL, &b, &err) == 0, "%s",
	    err.msg);
	CHECK(store_mailbox_id(s, "other", NULL, NULL, &c, &err) == 0, "%s",
	    err.msg);
	CHECK(a > 0 && a == b && c != a, "%lld %lld %lld", (long long)a,
	    (long long)b, (long long)c);
	CHECK_SQL(db,
	    "SELECT host FROM mailboxes WHERE name = "
	    "'bounces1'",
	    "127.0.0.1");
	mbox = a;
	store_free(&s);
}

/* The store's connection plans each statement once and never compiles
 * one to machine code: a generic plan is costed for an average parameter,
 * which at millions of ledger rows passes jit_above_cost, and compiling
 * costs more than the statement.  The settings hold on a new connection
 * after the server closed the old one. */
static void
t_session_settings(void)
{
	struct store *s = open_store();
	struct err err = {""};
	int64_t id = 0;
	int round;

	if (s == NULL)
		return;
	for (round = 0; round < 2; round++) {
		PGresult *r;

		CHECK(store_mailbox_id(s, "bounces1", NULL, NULL, &id, &err) ==
		        0,
		    "%s", err.msg);
		r = PQexec(s->conn,
		    "SELECT current_setting('jit'), "
		    "current_setting('plan_cache_mode')");
		CHECK(PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
		    PQerrorMessage(s->conn));
		if (PQresultStatus(r) == PGRES_TUPLES_OK) {
			CHECK_STR(PQgetvalue(r, 0, 0), "off");
			CHECK_STR(PQgetvalue(r, 0, 1), "force_generic_plan");
		}
		PQclear(r);
		/* the server ends the session: the next call reconnects */
		r = PQexec(db,
		    "SELECT pg_terminate_backend(pid) "
		    "FROM pg_stat_activity WHERE application_name = "
		    "'bouncerd' AND pid <> pg_backend_pid() AND "
		    "datname = current_database()");
		PQclear(r);
		usleep(100 * 1000);
	}
	store_free(&s);
}

static void
t_record_then_replay(void)
{
	struct store *s = open_store();
	struct err err = {""};
	struct msgbuf mb;
	enum store_result r = STORE_PENDING;
	struct store_uidl_info info[3];
	const char *uidls[3] = {"u-replay", "u-unseen", "u-replay"};

	if (s == NULL)
		return;
	make_msg(&mb, mbox, "u-replay", 2);
	CHECK(store_record(s, &mb.m, &r, &err) == 0, "%s", err.msg);
	CHECK_INT(r, STORE_WRITTEN);
	CHECK(store_record(s, &mb.m, &r, &err) == 0, "%s", err.msg);
	CHECK_INT(r, STORE_REPLAYED);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM messages "
	              "WHERE uidl = 'u-replay'"),
	    1);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM bounces b JOIN messages "
	              "m ON m.id = b.message_id "
	              "WHERE m.uidl = 'u-replay'"),
	    2);
	CHECK_SQL(db,
	    "SELECT recipient || ' ' || recipient_domain "
	    "FROM bounces ORDER BY id LIMIT 1",
	    "r0-u-replay@example.org example.org");
	CHECK(store_uidl_states(s, mbox, uidls, 3, info, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(info[0].state, STORE_UIDL_RECORDED);
	CHECK_INT(info[1].state, STORE_UIDL_NEW);
	CHECK_INT(info[2].state, STORE_UIDL_RECORDED);
	CHECK(info[0].fetched_at > now_unix() - 600 &&
	        info[0].fetched_at <= now_unix() + 5,
	    "fetched_at %lld", (long long)info[0].fetched_at);
	CHECK_INT(info[0].deleted, 0);
	store_free(&s);
}

/* Eight processes record the same (mailbox, uidl) at the same moment. */
static void
t_concurrent_same_uidl(void)
{
	int fds[2], i, written = 0, replayed = 0, bad = 0;
	pid_t pids[8];

	if (pipe(fds) != 0)
		return;
	for (i = 0; i < 8; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct store_options o = tdb_options(uri);
			struct store *s = NULL;
			struct err err = {""};
			struct msgbuf mb;
			enum store_result r = STORE_PENDING;
			char go;

			close(fds[1]);
			make_msg(&mb, mbox, "u-race", 3);
			if (store_open(&o, &s, &err) != 0)
				_exit(100);
			if (read(fds[0], &go, 1) < 0)
				_exit(101);
			if (store_record(s, &mb.m, &r, &err) != 0)
				_exit(102);
			store_free(&s);
			_exit((int)r);
		}
	}
	close(fds[0]);
	usleep(300000);
	close(fds[1]);
	for (i = 0; i < 8; i++) {
		int st = 0;

		waitpid(pids[i], &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == STORE_WRITTEN)
			written++;
		else if (WIFEXITED(st) && WEXITSTATUS(st) == STORE_REPLAYED)
			replayed++;
		else
			bad++;
	}
	CHECK_INT(written, 1);
	CHECK_INT(replayed, 7);
	CHECK_INT(bad, 0);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM messages "
	              "WHERE uidl = 'u-race'"),
	    1);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM bounces b JOIN messages "
	              "m ON m.id = b.message_id "
	              "WHERE m.uidl = 'u-race'"),
	    3);
}

/* A batch for store_record_batch: message I is PREFIX-I (I zero-padded to
 * WIDTH digits) with 1 + I % 3 bounce rows. */
struct batch {
	struct msgbuf *mb;
	struct store_message *msgs;
	enum store_result *res;
	size_t n;
};

/* Points the batch's messages at the current contents of their buffers. */
static void
batch_link(struct batch *bt)
{
	size_t i;

	for (i = 0; i < bt->n; i++) {
		msg_link(&bt->mb[i]);
		bt->msgs[i] = bt->mb[i].m;
	}
}

static void
batch_make(struct batch *bt, const char *prefix, int width, size_t n)
{
	size_t i;

	bt->n = n;
	bt->mb = xcalloc(n, sizeof(*bt->mb));
	bt->msgs = xcalloc(n, sizeof(*bt->msgs));
	bt->res = xcalloc(n, sizeof(*bt->res));
	for (i = 0; i < n; i++) {
		char u[32];

		snprintf(u, sizeof(u), "%s-%0*zu", prefix, width, i);
		make_msg(&bt->mb[i], mbox, u, 1 + (int)(i % 3));
	}
	batch_link(bt);
}

/* How many of the batch's messages were written or found recorded. */
static size_t
batch_done(const struct batch *bt)
{
	size_t i, done = 0;

	for (i = 0; i < bt->n; i++)
		done +=
		    bt->res[i] == STORE_WRITTEN || bt->res[i] == STORE_REPLAYED;
	return done;
}

static void
batch_free(struct batch *bt)
{
	free(bt->mb);
	free(bt->msgs);
	free(bt->res);
}

/* WANT messages PREFIX-* are in the database, each with all its bounce rows
 * and nothing more. */
static void
check_batch_recorded(const char *prefix, long want)
{
	char q[256];

	snprintf(q, sizeof(q),
	    "SELECT count(*) FROM messages WHERE uidl LIKE '%s-%%'", prefix);
	CHECK_INT(tdb_count(db, q), want);
	snprintf(q, sizeof(q),
	    "SELECT count(*) FROM messages m WHERE uidl LIKE '%s-%%' "
	    "AND (SELECT count(*) FROM bounces b "
	    "WHERE b.message_id = m.id) <> "
	    "1 + substr(uidl, 3)::int %% 3",
	    prefix);
	CHECK_INT(tdb_count(db, q), 0);
}

/* 250 messages in batches of 100; one refers to a mailbox that does not
 * exist (the database refuses it), one is a replay, one repeats a UIDL of
 * the same batch. */
static void
t_batch_with_refused_message(void)
{
	struct store *s = open_store();
	struct err err = {""};
	struct batch bt;
	enum store_result *res;
	size_t i, n = 250;
	int written = 0, replayed = 0, refused = 0, pending = 0;

	if (s == NULL)
		return;
	batch_make(&bt, "b", 3, n);
	res = bt.res;
	bt.mb[17].m.mailbox_id = 999999; /* no such mailbox */
	make_msg(&bt.mb[40], mbox, "u-replay", 2); /* recorded earlier */
	make_msg(&bt.mb[41], mbox, "b-039", 1); /* same UIDL as #39 */
	batch_link(&bt);
	CHECK(store_record_batch(s, bt.msgs, n, res, &err) == 0, "%s", err.msg);
	for (i = 0; i < n; i++) {
		written += res[i] == STORE_WRITTEN;
		replayed += res[i] == STORE_REPLAYED;
		refused += res[i] == STORE_REFUSED;
		pending += res[i] == STORE_PENDING;
	}
	CHECK_INT(res[17], STORE_REFUSED);
	CHECK_INT(res[40], STORE_REPLAYED);
	CHECK_INT(res[41], STORE_REPLAYED);
	CHECK_INT(written, 247);
	CHECK_INT(replayed, 2);
	CHECK_INT(refused, 1);
	CHECK_INT(pending, 0);
	CHECK(strstr(err.msg, "foreign key") != NULL, "%s", err.msg);
	/* every recorded message has all its rows, nothing more */
	check_batch_recorded("b", 247);
	batch_free(&bt);
	store_free(&s);
}

static void
t_hostile_text(void)
{
	static const char raw[] = "Subject: \xff\xfe bad\r\n\r\nNUL:\0:\xc0\xaf"
	                          ":end\r\n";
	struct store *s = open_store();
	struct err err = {""};
	struct msgbuf mb;
	enum store_result r = STORE_PENDING;
	const struct record_header kh[2] = {
	    {"X-Campaign-Id", "c'1\"; DROP TABLE bounces; --"},
	    {"X-Bad\xff", "v\\%_"},
	};
	char *v;
	PGresult *res;

	if (s == NULL)
		return;
	make_msg(&mb, mbox, "u-hostile", 2);
	mb.b[0].recipient = "O'Brien\"\\%_x'); DROP TABLE bounces; --@Ex.com";
	mb.b[0].diagnostic = "550 <o'brien@ex.com> \"quoted\" 100% \\ "
	                     "bad \xff\xfe utf8 \xed\xa0\x80 surrogate \xc0\xaf"
	                     " overlong \xe2\x82 cut";
	mb.rec.campaign_id = "spring'25";
	mb.rec.kept_headers = kh;
	mb.rec.nkept_headers = 2;
	mb.b[1].recipient = "\xff\xfe@bad.example";
	mb.rec.subject = "$1 $2 %s %n \\x00";
	mb.m.raw = raw;
	mb.m.raw_len = sizeof(raw) - 1;
	CHECK(store_record(s, &mb.m, &r, &err) == 0, "%s", err.msg);
	CHECK_INT(r, STORE_WRITTEN);
	v = tdb_value(db,
	    "SELECT b.recipient FROM bounces b JOIN messages m "
	    "ON m.id = b.message_id WHERE m.uidl = 'u-hostile' "
	    "ORDER BY b.id LIMIT 1");
	CHECK_STR(v, "o'brien\"\\%_x'); drop table bounces; --@ex.com");
	free(v);
	v = tdb_value(db,
	    "SELECT b.diagnostic FROM bounces b JOIN messages m "
	    "ON m.id = b.message_id WHERE m.uidl = 'u-hostile' "
	    "ORDER BY b.id LIMIT 1");
	CHECK_STR(v,
	    "550 <o'brien@ex.com> \"quoted\" 100% \\ bad "
	    "\xef\xbf\xbd\xef\xbf\xbd utf8 "
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd surrogate "
	    "\xef\xbf\xbd\xef\xbf\xbd overlong "
	    "\xef\xbf\xbd\xef\xbf\xbd cut");
	free(v);
	v = tdb_value(db,
	    "SELECT b.recipient || ' ' || b.recipient_domain "
	    "FROM bounces b JOIN messages m "
	    "ON m.id = b.message_id WHERE m.uidl = 'u-hostile' "
	    "ORDER BY b.id OFFSET 1 LIMIT 1");
	CHECK_STR(v, "\xef\xbf\xbd\xef\xbf\xbd@bad.example bad.example");
	free(v);
	v = tdb_value(db,
	    "SELECT original_headers::text || ' ' || campaign_id"
	    " FROM bounces b JOIN messages m "
	    "ON m.id = b.message_id WHERE m.uidl = 'u-hostile' "
	    "ORDER BY b.id LIMIT 1");
	CHECK_STR(v,
	    "{\"X-Bad\xef\xbf\xbd\": \"v\\\\%_\", \"X-Campaign-Id\": "
	    "\"c'1\\\"; DROP TABLE bounces; --\"} spring'25");
	free(v);
	v = tdb_value(db,
	    "SELECT array_to_string(repaired_fields, ',') || "
	    "' ' || subject FROM messages WHERE uidl = "
	    "'u-hostile'");
	CHECK_STR(v, "diagnostic,original_headers,recipient $1 $2 %s %n \\x00");
	free(v);
	/* the raw email is kept byte for byte, NUL and all */
	res = PQexecParams(db,
	    "SELECT raw FROM messages WHERE uidl = 'u-hostile'", 0, NULL, NULL,
	    NULL, NULL, 1);
	CHECK(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1,
	    "%s", PQresultErrorMessage(res));
	if (PQntuples(res) == 1) {
		CHECK_INT(PQgetlength(res, 0, 0), sizeof(raw) - 1);
		CHECK(memcmp(PQgetvalue(res, 0, 0), raw, sizeof(raw) - 1) == 0,
		    "raw bytes differ");
	}
	PQclear(res);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM pg_tables "
	              "WHERE tablename = 'bounces'"),
	    1);
	store_free(&s);
}

static void
t_text_clean(void)
{
	int rep = -1;
	char *c;

	c = store_text_clean("a\0b\xff", 4, 100, &rep);
	CHECK_STR(c, "ab\xef\xbf\xbd");
	CHECK_INT(rep, 1);
	free(c);
	c = store_text_clean("caf\xc3\xa9", 5, 100, &rep);
	CHECK_STR(c, "caf\xc3\xa9");
	CHECK_INT(rep, 0);
	free(c);
	/* cut at a character boundary, never inside "é" */
	c = store_text_clean("caf\xc3\xa9", 5, 4, &rep);
	CHECK_STR(c, "caf");
	CHECK_INT(rep, 1);
	free(c);
	c = store_text_clean("\xf4\x90\x80\x80 \xf0\x9f\x98\x80", 9, 100, &rep);
	CHECK_STR(c,
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
	    "\xf0\x9f\x98\x80");
	free(c);
	c = store_text_clean("", 0, 0, &rep);
	CHECK_STR(c, "");
	CHECK_INT(rep, 0);
	free(c);
}

static void
t_long_fields_are_cut(void)
{
	struct store *s = open_store();
	struct err err = {""};
	struct msgbuf mb;
	enum store_result r = STORE_PENDING;
	char *diag = xmalloc(20001);

	if (s == NULL)
		return;
	memset(diag, 'x', 20000);
	diag[20000] = '\0';
	make_msg(&mb, mbox, "u-long", 1);
	mb.b[0].diagnostic = diag;
	CHECK(store_record(s, &mb.m, &r, &err) == 0, "%s", err.msg);
	CHECK_INT(tdb_count(db,
	              "SELECT length(b.diagnostic) FROM bounces b "
	              "JOIN messages m ON m.id = b.message_id "
	              "WHERE m.uidl = 'u-long'"),
	    STORE_DIAGNOSTIC_MAX);
	free(diag);
	store_free(&s);
}

static void
t_invalid_uidl(void)
{
	struct store *s = open_store();
	struct err err = {""};
	struct msgbuf mb;
	enum store_result r = STORE_PENDING;
	struct store_uidl_info info[2];
	const char *uidls[2] = {"bad\xff", ""};

	if (s == NULL)
		return;
	make_msg(&mb, mbox, "bad\xff", 1);
	CHECK(store_record(s, &mb.m, &r, &err) == 0, "%s", err.msg);
	CHECK_INT(r, STORE_REFUSED);
	CHECK(store_uidl_states(s, mbox, uidls, 2, info, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(info[0].state, STORE_UIDL_QUARANTINED);
	CHECK_INT(info[1].state, STORE_UIDL_QUARANTINED);
	store_free(&s);
}

static void
t_failures_quarantine_and_release(void)
{
	struct store *s = open_store();
	struct err err = {""};
	struct store_failure f;
	struct store_uidl_info info[1];
	const char *u1[1] = {"u-bad"};
	int q = -1;
	struct msgbuf mb;
	enum store_result r = STORE_PENDING;

	if (s == NULL)
		return;
	memset(&f, 0, sizeof(f));
	f.mailbox_id = mbox;
	f.uidl = "u-bad";
	f.error = "decode: broken MIME \xff";
	f.size = 10;
	f.raw = "junk\0junk";
	f.raw_len = 9;
	CHECK(store_record_failure(s, &f, &q, &err) == 0, "%s", err.msg);
	CHECK_INT(q, 0);
	CHECK(store_uidl_states(s, mbox, u1, 1, info, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(info[0].state, STORE_UIDL_NEW);
	CHECK_INT(info[0].failures, 1);
	CHECK(store_record_failure(s, &f, &q, &err) == 0, "%s", err.msg);
	CHECK_INT(q, 0);
	CHECK(store_record_failure(s, &f, &q, &err) == 0, "%s", err.msg);
	CHECK_INT(q, 1);
	CHECK(store_uidl_states(s, mbox, u1, 1, info, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(info[0].state, STORE_UIDL_QUARANTINED);
	CHECK_INT(info[0].failures, 3);
	CHECK_INT(tdb_count(db,
	              "SELECT length(raw) FROM messages "
	              "WHERE uidl = 'u-bad'"),
	    9);
	/* a fourth report changes nothing, and says it is quarantined */
	CHECK(store_record_failure(s, &f, &q, &err) == 0, "%s", err.msg);
	CHECK_INT(q, 1);
	/* the operator's release (README) makes it new again */
	CHECK(tdb_exec(db,
	          "UPDATE messages SET outcome = 'failed', "
	          "failures = 0 WHERE outcome = 'quarantined' "
	          "AND uidl = 'u-bad'") == 0,
	    "release");
	CHECK(store_uidl_states(s, mbox, u1, 1, info, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(info[0].state, STORE_UIDL_NEW);
	/* a later success records it in place */
	make_msg(&mb, mbox, "u-bad", 1);
	CHECK(store_record(s, &mb.m, &r, &err) == 0, "%s", err.msg);
	CHECK_INT(r, STORE_WRITTEN);
	CHECK_SQL(db,
	    "SELECT outcome || failures || "
	    "coalesce(error, '-') FROM messages "
	    "WHERE uidl = 'u-bad'",
	    "recorded0-");
	CHECK(store_record_failure(s, &f, &q, &err) == 0, "%s", err.msg);
	CHECK_INT(q, 0);
	CHECK_SQL(db,
	    "SELECT outcome FROM messages "
	    "WHERE uidl = 'u-bad'",
	    "recorded");
	store_free(&s);
}

static void
t_mark_deleted_and_prune(void)
{
	struct store *s = open_store();
	struct err err = {""};
	struct store_uidl_info info[2];
	const char *del[2] = {"b-001", "b-002"};
	const char *present[2] = {"b-003", "b-004"};
	int64_t pruned = -1;
	long long before, rows, failed;

	if (s == NULL)
		return;
	CHECK(store_mark_deleted(s, mbox, del, 2, &err) == 0, "%s", err.msg);
	CHECK(store_uidl_states(s, mbox, del, 2, info, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(info[0].deleted, 1);
	CHECK_INT(info[0].state, STORE_UIDL_RECORDED);
	before = tdb_count(db,
	    "SELECT count(*) FROM messages WHERE "
	    "deleted_at IS NULL AND mailbox_id = "
	    "(SELECT id FROM mailboxes WHERE name = "
	    "'bounces1')");
	rows = tdb_count(db, "SELECT count(*) FROM bounces");
	CHECK(store_prune(s, mbox, present, 2, -1, &pruned, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(pruned, before - 2);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM messages WHERE "
	              "deleted_at IS NULL AND mailbox_id = "
	              "(SELECT id FROM mailboxes WHERE name = "
	              "'bounces1')"),
	    2);
	CHECK(tdb_count(db,
	          "SELECT count(*) FROM messages WHERE raw IS NOT "
	          "NULL AND deleted_at IS NOT NULL") > 0,
	    "raw kept so far");
	/* retention.raw: kept while younger than the retention */
	CHECK(store_prune(s, mbox, present, 2, 3600, &pruned, &err) == 0, "%s",
	    err.msg);
	CHECK(tdb_count(db,
	          "SELECT count(*) FROM messages WHERE raw IS NOT "
	          "NULL AND deleted_at IS NOT NULL") > 0,
	    "raw younger than an hour kept");
	failed = tdb_count(db,
	    "SELECT count(*) FROM messages WHERE raw IS NOT NULL AND "
	    "(outcome <> 'recorded' OR kind = 'unknown')");
	CHECK(store_prune(s, mbox, present, 2, 0, &pruned, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM messages WHERE raw IS NOT "
	              "NULL AND outcome = 'recorded' AND kind <> 'unknown' "
	              "AND mailbox_id = "
	              "(SELECT id FROM mailboxes WHERE name = 'bounces1')"),
	    0);
	/* an email that failed keeps its raw bytes for the operator, and a
	 * message that is not a bounce keeps them for good */
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM messages WHERE raw IS NOT NULL "
	              "AND (outcome <> 'recorded' OR kind = 'unknown')"),
	    failed);
	CHECK_INT(tdb_count(db, "SELECT count(*) FROM bounces"), rows);
	store_free(&s);
}

static void
t_mailbox_locks(void)
{
	struct store *a = open_store(), *b = open_store();
	struct err err = {""};
	int got = -1, i;

	if (a == NULL || b == NULL)
		goto out;
	CHECK(store_mailbox_trylock(a, mbox, &got, &err) == 0, "%s", err.msg);
	CHECK_INT(got, 1);
	CHECK(store_mailbox_trylock(b, mbox, &got, &err) == 0, "%s", err.msg);
	CHECK_INT(got, 0);
	CHECK(store_mailbox_trylock(b, mbox + 1, &got, &err) == 0, "%s",
	    err.msg);
	CHECK_INT(got, 1);
	CHECK(store_mailbox_unlock(a, mbox, &err) == 0, "%s", err.msg);
	CHECK(store_mailbox_trylock(b, mbox, &got, &err) == 0, "%s", err.msg);
	CHECK_INT(got, 1);
	store_free(&b); /* closing releases its locks (once the server has
			   seen the disconnect) */
	for (i = 0; i < 100; i++) {
		CHECK(store_mailbox_trylock(a, mbox, &got, &err) == 0, "%s",
		    err.msg);
		if (got)
			break;
		usleep(20000);
	}
	CHECK_INT(got, 1);
out:
	store_free(&a);
	store_free(&b);
}

static void
t_settings(void)
{
	struct store *s = open_store();
	struct err err = {""};
	struct store_settings st = {.soft_threshold = 5,
	    .soft_window_s = 7 * 86400};

	if (s == NULL)
		return;
	CHECK(store_apply_settings(s, &st, &err) == 0, "%s", err.msg);
	CHECK_SQL(db,
	    "SELECT soft_threshold || ' ' || soft_window "
	    "FROM settings",
	    "5 7 days");
	st.soft_threshold = 0;
	CHECK(store_apply_settings(s, &st, &err) == -1, "threshold 0 taken");
	st.soft_threshold = 3;
	st.soft_window_s = 30 * 86400;
	CHECK(store_apply_settings(s, &st, &err) == 0, "%s", err.msg);
	store_free(&s);
}

static void
t_restart_between_writes(void)
{
	struct store *s = open_store();
	struct err err = {""};
	struct msgbuf mb;
	enum store_result r = STORE_PENDING;
	uint64_t gen;
	struct store_uidl_info info[1];
	const char *u[1] = {"r-1"};

	if (s == NULL)
		return;
	if (getenv("BOUNCER_TEST_PG_DATA") == NULL) {
		test_skip("BOUNCER_TEST_PG_DATA not set");
		store_free(&s);
		return;
	}
	make_msg(&mb, mbox, "r-1", 1);
	CHECK(store_record(s, &mb.m, &r, &err) == 0, "%s", err.msg);
	gen = store_generation(s);
	CHECK(tdb_restart_pg() == 0, "pg_ctl restart failed");
	PQreset(db);
	make_msg(&mb, mbox, "r-2", 2);
	CHECK(store_record(s, &mb.m, &r, &err) == 0, "%s", err.msg);
	CHECK_INT(r, STORE_WRITTEN);
	CHECK(store_generation(s) > gen, "no reconnect seen");
	CHECK(tdb_restart_pg() == 0, "pg_ctl restart failed");
	PQreset(db);
	CHECK(store_uidl_states(s, mbox, u, 1, info, &err) == 0, "%s", err.msg);
	CHECK_INT(info[0].state, STORE_UIDL_RECORDED);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM bounces b JOIN messages "
	              "m ON m.id = b.message_id "
	              "WHERE m.uidl = 'r-2'"),
	    2);
	store_free(&s);
}

/* A child restarts PostgreSQL twice while the parent records 3000
 * messages (1-3 bounce rows each) in batches of 50: every message ends up
 * recorded once with all its rows; no message is left without them. */
static void
t_restart_during_writes(void)
{
	struct store *s;
	struct store_options o = tdb_options(uri);
	struct err err = {""};
	struct batch bt;
	size_t i, n = 3000;
	pid_t kid;
	int st = 0, rc = 0;

	if (getenv("BOUNCER_TEST_PG_DATA") == NULL) {
		test_skip("BOUNCER_TEST_PG_DATA not set");
		return;
	}
	o.batch_size = 50;
	if (store_open(&o, &s, &err) != 0) {
		test_fail_at(__FILE__, __LINE__, "%s", err.msg);
		return;
	}
	batch_make(&bt, "x", 4, n);
	kid = fork();
	if (kid == 0) {
		usleep(150000);
		tdb_restart_pg();
		usleep(300000);
		tdb_restart_pg();
		_exit(0);
	}
	/* record in slices of 100 so the restarts hit mid-stream */
	for (i = 0; i < n && rc == 0; i += 100) {
		rc = store_record_batch(s, bt.msgs + i, 100, bt.res + i, &err);
		usleep(20000);
	}
	waitpid(kid, &st, 0);
	CHECK(rc == 0, "%s", err.msg);
	CHECK_INT(batch_done(&bt), n);
	CHECK(store_generation(s) >= 2, "no reconnect happened (gen %llu)",
	    (unsigned long long)store_generation(s));
	PQreset(db);
	check_batch_recorded("x", (long)n);
	batch_free(&bt);
	store_free(&s);
}

/* A child terminates the store's backend every 40 ms while the parent
 * records 2000 messages: each kill aborts a transaction in flight; every
 * message still ends up recorded once, with all its rows. */
static void
t_backend_killed_mid_batch(void)
{
	struct store *s;
	struct store_options o = tdb_options(uri);
	struct err err = {""};
	struct batch bt;
	size_t i, n = 2000;
	pid_t kid;
	int st = 0, rc = 0;

	o.batch_size = 25;
	o.application_name = "store-kill-test";
	o.backoff_initial_ms = 10;
	if (store_open(&o, &s, &err) != 0) {
		test_fail_at(__FILE__, __LINE__, "%s", err.msg);
		return;
	}
	batch_make(&bt, "k", 4, n);
	kid = fork();
	if (kid == 0) {
		PGconn *c = tdb_connect(uri);
		int k;

		for (k = 0; c != NULL && k < 40; k++) {
			usleep(40000);
			PQclear(PQexec(c,
			    "SELECT pg_terminate_backend(pid) "
			    "FROM pg_stat_activity WHERE "
			    "application_name = "
			    "'store-kill-test'"));
		}
		PQfinish(c);
		_exit(0);
	}
	for (i = 0; i < n && rc == 0; i += 50)
		rc = store_record_batch(s, bt.msgs + i, 50, bt.res + i, &err);
	waitpid(kid, &st, 0);
	CHECK(rc == 0, "%s", err.msg);
	CHECK_INT(batch_done(&bt), n);
	CHECK(store_generation(s) >= 2, "no backend was killed (gen %llu)",
	    (unsigned long long)store_generation(s));
	printf("# reconnects: %llu\n",
	    (unsigned long long)store_generation(s) - 1);
	check_batch_recorded("k", (long)n);
	batch_free(&bt);
	store_free(&s);
}

/* The server stays down: the store gives up after its attempts, and a stop
 * flag ends the wait early. */
static void
t_unreachable_gives_up(void)
{
	struct store_options o = tdb_options(
	    "postgresql://bouncer:x@127.0.0.1:1/none?sslmode=disable");
	struct store *s = NULL;
	struct err err = {""};
	volatile sig_atomic_t stop = 0;
	int64_t t0;

	o.reconnect_attempts = 3;
	o.backoff_initial_ms = 100;
	o.backoff_max_ms = 150;
	t0 = now_ms();
	CHECK(store_open(&o, &s, &err) == -1, "opened a closed port");
	CHECK(strstr(err.msg, "unreachable (3 attempts)") != NULL, "%s",
	    err.msg);
	/* waits 100 + 150 ms between the three attempts */
	CHECK(now_ms() - t0 >= 240 && now_ms() - t0 < 5000, "took %lld ms",
	    (long long)(now_ms() - t0));
	o.reconnect_attempts = -1;
	o.stop = &stop;
	stop = 1;
	CHECK(store_open(&o, &s, &err) == -1, "not interrupted");
	CHECK(strstr(err.msg, "interrupted") != NULL, "%s", err.msg);
}

int
main(void)
{
	if (getenv("BOUNCER_TEST_PG") == NULL) {
		printf("SKIP test_store: BOUNCER_TEST_PG not set\n");
		return 0;
	}
	RUN(t_text_clean);
	RUN(t_unreachable_gives_up);
	uri = tdb_fresh("bouncer_store_test");
	if (uri == NULL) {
		printf("FAIL test_store: cannot create a test database\n");
		return 1;
	}
	db = tdb_connect(uri);
	RUN(t_migrate_fresh_and_rerun);
	RUN(t_migrate_changed_file_is_an_error);
	RUN(t_migrate_concurrently);
	RUN(t_mailbox_id_is_stable);
	RUN(t_session_settings);
	RUN(t_record_then_replay);
	RUN(t_concurrent_same_uidl);
	RUN(t_batch_with_refused_message);
	RUN(t_hostile_text);
	RUN(t_long_fields_are_cut);
	RUN(t_invalid_uidl);
	RUN(t_failures_quarantine_and_release);
	RUN(t_mark_deleted_and_prune);
	RUN(t_mailbox_locks);
	RUN(t_settings);
	RUN(t_backend_killed_mid_batch);
	RUN(t_restart_between_writes);
	RUN(t_restart_during_writes);
	PQfinish(db);
	tdb_drop("bouncer_store_test");
	free(uri);
	return test_done();
}
