/*
 * test_store_state.c - the stored suppression state (suppression_state,
 * read by the suppressions view) against the rules evaluated from scratch
 * (suppression_status(NULL)) over thousands of random address histories:
 * bounces of every class in multi-row statements, delays, first-pass and
 * max-age rows, delivery reports, lifts, window, threshold and override
 * changes, soft bounces leaving the window while the test runs, and the
 * history older than the window's month read as carried sums.  The
 * change feed must replay to the same list.  Then two writers hammering
 * the same addresses: every change announced exactly once, ids in order.
 * And a database with histories on the schema before the stored state,
 * migrated: no row lost, the stored list equal to the old view's.
 * Skips without BOUNCER_TEST_PG; BOUNCER_TEST_SEED repeats a run.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "store/schema_sql.h"
#include "store/store.h"
#include "test.h"
#include "test_store_db.h"
#include "base/util.h"

#define NADDR 3000 /* histories: one per address */
#define ROUNDS 6

static char *uri;
static PGconn *db;
static unsigned seed;
static int uidl_seq;
static int edges = 1; /* write soft bounces about to leave the window */

static void tbuf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
tbuf_printf(struct buf *b, const char *fmt, ...)
{
	char *p;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	buf_append(b, p, (size_t)n);
	free(p);
}

static unsigned
rnd(unsigned n)
{
	seed = seed * 1103515245u + 12345u;
	return ((seed >> 8) & 0xffffff) % n;
}

static const char *const classes[] = {"hard", "soft", "soft", "soft",
    "complaint", "delivered", "autoreply", "unknown"};
static const char *const reasons[] = {"userunknown", "mailboxfull", "blocked",
    "expired", "spamdetected"};

/* Appends one random bounce row of address a to sql, as a VALUES row. */
static void
bounce_row(struct buf *sql, int a, int first)
{
	const char *cls = classes[rnd(sizeof(classes) / sizeof(classes[0]))];
	const char *reason = reasons[rnd(sizeof(reasons) / sizeof(reasons[0]))];
	const char *action = rnd(8) == 0 ? "delayed" : "failed";
	const char *counts = "true", *why = "NULL";
	char when[96];
	unsigned k = rnd(20);

	if (strcmp(cls, "complaint") == 0)
		reason = "feedback";
	if (k == 0) {
		counts = "false";
		why = "'first_pass'";
	} else if (k == 1) {
		counts = "false";
		why = "'max_age'";
	}
	if (edges && rnd(12) == 0) /* leaves a 30-day window in seconds */
		snprintf(when, sizeof(when),
		    "now() - interval '30 days' + interval '%u seconds'",
		    1 + rnd(4));
	else
		snprintf(when, sizeof(when), "now() - interval '%u seconds'",
		    rnd(60 * 86400));
	tbuf_printf(sql,
	    "%s('h%d@d%d.example', 'd%d.example', '%s', '%s', '%s', %s, %s, "
	    "%s)",
	    first ? "" : ",", a, a % 97, a % 97, cls, reason, action, counts,
	    why, when);
}

/* One INSERT statement with n random rows of random addresses (and
 * sometimes several rows of one address). */
static int
insert_batch(PGconn *c, int n)
{
	struct buf sql;
	int i, rc, a = (int)rnd(NADDR);

	buf_init(&sql, 4096);
	tbuf_printf(&sql,
	    "WITH m AS (INSERT INTO messages (mailbox_id, uidl) VALUES "
	    "((SELECT min(id) FROM mailboxes), 'eq-%d') RETURNING id) "
	    "INSERT INTO bounces (message_id, recipient, recipient_domain, "
	    "class, reason, action, counts, not_counted_because, bounced_at) "
	    "SELECT m.id, v.* FROM m, (VALUES ",
	    ++uidl_seq);
	for (i = 0; i < n; i++) {
		if (rnd(3) != 0)
			a = (int)rnd(NADDR);
		bounce_row(&sql, a, i == 0);
	}
	buf_append_str(&sql, ") AS v");
	rc = tdb_exec(c, buf_cstr(&sql));
	buf_free(&sql);
	return rc;
}

/* Prints every row of a query to stderr, to show what differs. */
static void
print_rows(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	int i, j;

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "  %s", PQresultErrorMessage(r));
	for (i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r);
	     i++) {
		for (j = 0; j < PQnfields(r); j++)
			fprintf(stderr, "%s%s=%s", j ? " " : "  ",
			    PQfname(r, j),
			    PQgetisnull(r, i, j) ? "NULL"
			                         : PQgetvalue(r, i, j));
		fputc('\n', stderr);
	}
	PQclear(r);
}

/* Differences between the stored list and the rules evaluated now, in
 * one transaction after the expiry sweep (so both see the same now()). */
static long long
differences(PGconn *c)
{
	long long n;

	if (tdb_exec(c, "BEGIN") != 0)
		return -1;
	n = tdb_count(c, "SELECT suppression_state_expire(1000000)");
	if (n >= 0)
		n = tdb_count(c,
		    "SELECT count(*) FROM ("
		    "(SELECT " TDB_LIST_COLS " FROM suppressions EXCEPT "
		    " SELECT " TDB_LIST_COLS
		    " FROM suppression_status(NULL) WHERE suppressed)"
		    " UNION ALL "
		    "(SELECT " TDB_LIST_COLS
		    " FROM suppression_status(NULL) WHERE suppressed"
		    " EXCEPT SELECT " TDB_LIST_COLS " FROM suppressions)) d");
	if (n != 0) {
		print_rows(c,
		    "SELECT 'state' AS src, * FROM (SELECT " TDB_LIST_COLS
		    " FROM suppressions "
		    "EXCEPT SELECT " TDB_LIST_COLS " FROM "
		    "suppression_status(NULL) WHERE suppressed) x LIMIT 3");
		print_rows(c,
		    "SELECT 'rules' AS src, * FROM (SELECT " TDB_LIST_COLS
		    " FROM suppression_status(NULL) WHERE"
		    " suppressed EXCEPT SELECT " TDB_LIST_COLS
		    " FROM suppressions) x LIMIT 3");
		print_rows(c,
		    "WITH a AS (SELECT address FROM (SELECT address FROM "
		    "suppressions EXCEPT SELECT address FROM "
		    "suppression_status(NULL) WHERE suppressed) x LIMIT 1) "
		    "SELECT 'row' AS src, b.bounced_at, b.class, b.reason,"
		    " b.action, b.counts FROM bounces b, a WHERE b.recipient ="
		    " a.address UNION ALL SELECT 'lift', l.lifted_at, NULL, "
		    "NULL, NULL, NULL FROM suppression_lifts l, a WHERE "
		    "l.address = a.address UNION ALL SELECT 'carried', "
		    "k.last_at, k.class, k.reason, NULL, NULL FROM "
		    "suppression_carried k, a WHERE k.address = a.address "
		    "ORDER BY 2");
	}
	tdb_exec(c, "COMMIT");
	return n;
}

/* Addresses whose latest change in the feed disagrees with the state. */
static long long
feed_mismatches(PGconn *c)
{
	return tdb_count(c,
	    "SELECT count(*) FROM suppression_state s FULL JOIN ("
	    " SELECT DISTINCT ON (address) address, change,"
	    "  suppressed_because, reason, class FROM suppression_changes"
	    " ORDER BY address, id DESC) f ON f.address = s.address "
	    "WHERE coalesce(s.suppressed, false) IS DISTINCT FROM"
	    "  coalesce(f.change IN ('added', 'reason_changed'), false)"
	    " OR (s.suppressed AND (s.suppressed_because, s.reason, s.class)"
	    "  IS DISTINCT FROM (f.suppressed_because, f.reason, f.class))");
}

static void
random_settings(PGconn *c)
{
	static const char *const windows[] = {"30 days", "10 days", "45 days",
	    "30 days"};
	char *sql = xasprintf(
	    "UPDATE settings SET soft_threshold = %u, soft_window = '%s'",
	    1 + rnd(4), windows[rnd(4)]);

	tdb_exec(c, "BEGIN");
	tdb_exec(c, sql);
	tdb_exec(c, "DELETE FROM reason_overrides");
	switch (rnd(4)) {
	case 0:
		tdb_exec(c,
		    "INSERT INTO reason_overrides VALUES ('blocked', 'never', "
		    "NULL)");
		break;
	case 1:
		tdb_exec(c,
		    "INSERT INTO reason_overrides VALUES ('mailboxfull', "
		    "'hard_after', 2)");
		break;
	case 2:
		tdb_exec(c,
		    "INSERT INTO reason_overrides VALUES ('mailboxfull', "
		    "'hard_after', 3), ('expired', 'never', NULL)");
		break;
	default:
		break;
	}
	tdb_exec(c, "SELECT suppression_rules_sync()");
	tdb_exec(c, "COMMIT");
	free(sql);
}

/* A lift dated after an address's only counted bounce, both older than
 * the folded history: the rules have no row of the address left, and the
 * stored state must say not suppressed, with the lift, announced once. */
static void
t_lift_after_folded_rows(void)
{
	tdb_exec(db, "UPDATE settings SET soft_window = '30 days'");
	tdb_exec(db, "SELECT suppression_rules_sync()");
	CHECK_INT(tdb_exec(db,
	              "WITH m AS (INSERT INTO messages (mailbox_id, uidl) "
	              "VALUES ((SELECT min(id) FROM mailboxes), 'fold-lift') "
	              "RETURNING id) INSERT INTO bounces (message_id, "
	              "recipient, recipient_domain, class, reason, action, "
	              "bounced_at) SELECT m.id, 'fl@fold.example', "
	              "'fold.example', 'complaint', 'feedback', 'failed', "
	              "now() - interval '100 days' FROM m"),
	    0);
	tdb_exec(db, "SELECT suppression_fold_history()");
	/* folded_before is at most 61 days back: the complaint is carried */
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppression_carried WHERE "
	              "address = 'fl@fold.example'"),
	    1);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppressions WHERE "
	              "address = 'fl@fold.example'"),
	    1);
	CHECK_INT(tdb_exec(db,
	              "INSERT INTO suppression_lifts (address, note, "
	              "lifted_at) VALUES ('fl@fold.example', 'direct', "
	              "now() - interval '90 days')"),
	    0);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppressions WHERE "
	              "address = 'fl@fold.example'"),
	    0);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppression_state WHERE "
	              "address = 'fl@fold.example' AND NOT suppressed AND "
	              "complaints = 0 AND lifted_at IS NOT NULL"),
	    1);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppression_changes WHERE "
	              "address = 'fl@fold.example' AND change = 'lifted'"),
	    1);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppression_status(NULL) WHERE "
	              "address = 'fl@fold.example' AND suppressed"),
	    0);
}

/* A new bounce of an address already in the state updates its row in
 * place (a heap-only update, no new index entries): no index of
 * suppression_state may hold a column every bounce changes. */
static void
t_repeat_bounce_updates_in_place(void)
{
	long long upd[4] = {0}, hot[4] = {0};
	int i;

	tdb_exec(db, "BEGIN");
	for (i = 1; i <= 3; i++) {
		char *sql = xasprintf(
		    "WITH m AS (INSERT INTO messages (mailbox_id, uidl) "
		    "VALUES ((SELECT min(id) FROM mailboxes), 'hot-%d') "
		    "RETURNING id) INSERT INTO bounces (message_id, "
		    "recipient, recipient_domain, class, reason, action, "
		    "bounced_at) SELECT m.id, 'hot@inplace.example', "
		    "'inplace.example', 'hard', 'userunknown', 'failed', "
		    "now() - interval '%d hours' FROM m",
		    i, 4 - i);

		CHECK_INT(tdb_exec(db, sql), 0);
		free(sql);
		upd[i] = tdb_count(db,
		    "SELECT pg_stat_get_xact_tuples_updated("
		    "'suppression_state'::regclass)");
		hot[i] = tdb_count(db,
		    "SELECT pg_stat_get_xact_tuples_hot_updated("
		    "'suppression_state'::regclass)");
		printf("#   bounce %d: %lld updates, %lld in place\n", i,
		    upd[i] - upd[i - 1], hot[i] - hot[i - 1]);
	}
	tdb_exec(db, "COMMIT");
	/* the first bounce fills the new row and puts the address on the
	 * list (its domain and suppressed_since are indexed); the next two
	 * only count */
	for (i = 2; i <= 3; i++)
		CHECK(upd[i] - upd[i - 1] >= 1 &&
		        hot[i] - hot[i - 1] == upd[i] - upd[i - 1],
		    "bounce %d: %lld updates, %lld in place", i,
		    upd[i] - upd[i - 1], hot[i] - hot[i - 1]);
	CHECK_INT(tdb_count(db,
	              "SELECT hard_bounces FROM suppression_state "
	              "WHERE address = 'hot@inplace.example'"),
	    3);
}

static void
plans_notice(void *arg, const char *msg)
{
	buf_append((struct buf *)arg, msg, strlen(msg));
}

/* Recording and the evaluation over the history leave out, when their
 * statements start, the months they cannot need: before the soft window
 * for the delivery reports after an address's new soft bounces, before
 * folded_before for the history.  Otherwise every execution opens every
 * month kept (sixty after five years).  Shown by the plans auto_explain
 * sends as notices. */
static void
t_old_months_left_out(void)
{
	const char *admin = getenv("BOUNCER_TEST_PG_ADMIN");
	char *auri, *old, *cur;
	PGconn *a;
	struct buf plans;

	if (admin == NULL) {
		test_skip("needs BOUNCER_TEST_PG_ADMIN (auto_explain)");
		return;
	}
	auri = tdb_uri(admin, "bouncer_store_state");
	a = tdb_connect(auri);
	CHECK(a != NULL, "admin connection");
	if (a == NULL) {
		free(auri);
		return;
	}
	buf_init(&plans, 1 << 22);
	CHECK_INT(tdb_exec(db,
	              "SELECT bounce_partitions_cover("
	              "now() - interval '400 days', now())"),
	    0);
	old = tdb_value(db,
	    "SELECT to_char(now() - interval '3 months', "
	    "'\"bounces_\"YYYY_MM')");
	cur = tdb_value(db, "SELECT to_char(now(), '\"bounces_\"YYYY_MM')");
	CHECK_INT(tdb_exec(a, "LOAD 'auto_explain'"), 0);
	CHECK_INT(tdb_exec(a,
	              "SET auto_explain.log_min_duration = 0; "
	              "SET auto_explain.log_nested_statements = on; "
	              "SET auto_explain.log_level = notice; "
	              "SET client_min_messages = notice"),
	    0);
	PQsetNoticeProcessor(a, plans_notice, &plans);
	/* a soft bounce of a new address: the delivery-report search runs */
	CHECK_INT(tdb_exec(a,
	              "WITH m AS (INSERT INTO messages (mailbox_id, uidl) "
	              "VALUES ((SELECT min(id) FROM mailboxes), 'months-1') "
	              "RETURNING id) INSERT INTO bounces (message_id, "
	              "recipient, recipient_domain, class, reason, action, "
	              "bounced_at) SELECT m.id, 'months@left.example', "
	              "'left.example', 'soft', 'mailboxfull', 'failed', "
	              "now() - interval '1 hour' FROM m"),
	    0);
	/* the evaluation over the history, with the months before the last
	 * two folded */
	CHECK_INT(tdb_exec(a,
	              "BEGIN; UPDATE suppression_feed SET folded_before = "
	              "date_trunc('month', now() - interval '1 month') "
	              "WHERE id; SELECT count(*) FROM "
	              "suppression_state_compute(ARRAY['months@left.example']);"
	              " ROLLBACK"),
	    0);
	buf_append(&plans, "", 1);
	CHECK(old && cur && strstr(plans.data, "suppression_state_refresh") &&
	        strstr(plans.data, "suppression_state_compute"),
	    "plans of both functions captured");
	CHECK(cur && strstr(plans.data, cur) != NULL,
	    "the current month %s is in the plans", cur ? cur : "?");
	CHECK(old && strstr(plans.data, old) == NULL,
	    "a month three months back, %s, is not in any plan",
	    old ? old : "?");
	CHECK(strstr(plans.data, "Subplans Removed") != NULL,
	    "months removed when the statements start");
	buf_free(&plans);
	free(old);
	free(cur);
	PQfinish(a);
	free(auri);
}

static void
t_equivalence(void)
{
	int round, i;
	long long d;

	for (round = 0; round < ROUNDS; round++) {
		for (i = 0; i < 500; i++)
			CHECK(insert_batch(db, 1 + (int)rnd(20)) == 0,
			    "insert");
		/* lifts: through unsuppress(), and written directly */
		for (i = 0; i < 60; i++) {
			char *sql = xasprintf(
			    "SELECT unsuppress(address, 'test') FROM "
			    "suppressions ORDER BY md5(address || %u) LIMIT 1",
			    rnd(1000000));

			tdb_exec(db, sql);
			free(sql);
		}
		for (i = 0; i < 10; i++) {
			char *sql = xasprintf(
			    "INSERT INTO suppression_lifts (address, note, "
			    "lifted_at) VALUES ('h%u@d0.example', 'direct', "
			    "now() - interval '%u days')",
			    rnd(NADDR / 97) * 97, rnd(40));

			tdb_exec(db, sql);
			free(sql);
		}
		if (round % 2 == 1)
			random_settings(db);
		/* as bouncerd does after each pass: what is older than the
		 * window's month is read as sums from then on (10-day windows
		 * fold most of the history, 45-day ones read it back) */
		tdb_exec(db, "SELECT suppression_fold_history()");
		d = differences(db);
		CHECK(d == 0, "round %d (seed %u): %lld differences", round,
		    seed, d);
		CHECK_INT(feed_mismatches(db), 0);
	}
	/* the soft bounces placed at the window's edge have left it */
	tdb_exec(db, "UPDATE settings SET soft_window = '30 days'");
	tdb_exec(db, "SELECT suppression_rules_sync()");
	sleep(5);
	d = differences(db);
	CHECK(d == 0, "after expiry (seed %u): %lld differences", seed, d);
	CHECK_INT(feed_mismatches(db), 0);
	CHECK(tdb_count(db, "SELECT count(*) FROM suppressions") > 300,
	    "a list worth comparing: %lld",
	    tdb_count(db, "SELECT count(*) FROM suppressions"));
	CHECK(tdb_count(db,
	          "SELECT count(DISTINCT change) FROM suppression_changes") ==
	        4,
	    "every kind of change seen");
}

/* Writer w: nstmt statements, each in its own transaction, of soft
 * bounces of addresses in an order of its own; exits 0 on success. */
static int
writer(int w, int naddr, int per_addr)
{
	PGconn *c = tdb_connect(uri);
	int i, k, rc = 0;

	if (c == NULL)
		return 1;
	for (k = 0; k < per_addr && rc == 0; k++)
		for (i = 0; i < naddr && rc == 0; i += 10) {
			struct buf sql;
			int j;

			buf_init(&sql, 2048);
			tbuf_printf(&sql,
			    "WITH m AS (INSERT INTO messages (mailbox_id, uidl)"
			    " VALUES ((SELECT min(id) FROM mailboxes), "
			    "'w%d-%d-%d') RETURNING id) "
			    "INSERT INTO bounces (message_id, recipient,"
			    " recipient_domain, class, reason, action) "
			    "SELECT m.id, v.* FROM m, (VALUES ",
			    w, k, i);
			for (j = 0; j < 10 && i + j < naddr; j++) {
				/* writer 1 walks the addresses backwards */
				int a = w == 0 ? i + j : naddr - 1 - (i + j);

				tbuf_printf(&sql,
				    "%s('w%d@two.example', 'two.example', "
				    "'soft', 'mailboxfull', 'failed')",
				    j ? "," : "", a);
			}
			buf_append_str(&sql, ") AS v");
			rc = tdb_exec(c, buf_cstr(&sql));
			buf_free(&sql);
		}
	PQfinish(c);
	return rc == 0 ? 0 : 1;
}

static void
t_two_writers_notify(void)
{
	PGconn *l = tdb_connect(uri);
	const int naddr = 400;
	long long first, n = 0, last_id = 0, out_of_order = 0;
	pid_t p[2];
	int w, st, ok = 1, extended = 0;
	int64_t until;

	if (l == NULL)
		return;
	tdb_exec(db,
	    "UPDATE settings SET soft_threshold = 3, "
	    "soft_window = '30 days'");
	tdb_exec(db, "DELETE FROM reason_overrides");
	tdb_exec(db, "SELECT suppression_rules_sync()");
	first = tdb_count(db, "SELECT last_change_id FROM suppression_feed");
	CHECK(tdb_exec(l, "LISTEN " STORE_NOTIFY_CHANNEL) == 0, "listen");
	for (w = 0; w < 2; w++) {
		p[w] = fork();
		if (p[w] == 0)
			_exit(writer(w, naddr, 2));
	}
	for (w = 0; w < 2; w++)
		if (waitpid(p[w], &st, 0) != p[w] || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			ok = 0;
	CHECK(ok, "a writer failed");
	/* each address got 4 soft bounces, 2 from each writer: it enters
	 * the list once, whoever commits its third */
	until = now_ms() + 3000;
	while (now_ms() < until) {
		struct pollfd pf = {.fd = PQsocket(l), .events = POLLIN};
		PGnotify *nt;

		poll(&pf, 1, 200);
		PQconsumeInput(l);
		while ((nt = PQnotifies(l)) != NULL) {
			const char *idp = strstr(nt->extra, "\"id\" : ");
			long long id = idp ? strtoll(idp + 7, NULL, 10) : -1;

			if (id <= last_id)
				out_of_order++;
			last_id = id;
			n++;
			PQfreemem(nt);
		}
		if (n >= naddr && !extended) {
			/* a moment more for any extra one */
			until = now_ms() + 300;
			extended = 1;
		}
	}
	CHECK_INT(n, naddr);
	CHECK_INT(out_of_order, 0);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppression_changes WHERE "
	              "address LIKE 'w%@two.example' AND change = 'added'"),
	    naddr);
	CHECK_INT(tdb_count(db, "SELECT last_change_id FROM suppression_feed") -
	        first,
	    naddr);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppressions WHERE domain = "
	              "'two.example' AND recent_soft_bounces = 4"),
	    naddr);
	CHECK_INT(differences(db), 0);
	PQfinish(l);
}

/* A database on the schema before the stored state (migrations up to
 * 009), with histories in it, migrated: no row lost, and the stored list
 * is what the old view said. */
static void
t_migrate_existing_database(void)
{
	char *muri = tdb_fresh("bouncer_store_migr");
	PGconn *c = muri ? tdb_connect(muri) : NULL;
	struct store_options o;
	struct store *st = NULL;
	struct err err = {""};
	size_t i;
	long long before_b, before_m, d;
	unsigned saved = seed;

	CHECK(c != NULL, "database");
	if (c == NULL)
		return;
	tdb_exec(c,
	    "CREATE TABLE schema_migrations (version integer PRIMARY "
	    "KEY, name text NOT NULL, checksum text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())");
	for (i = 0; i < store_migration_nsrcs; i++) {
		const struct store_migration_src *m = &store_migration_srcs[i];
		const char *v[3];
		char ver[16];
		PGresult *r;

		if (m->version > 9)
			break;
		CHECK(tdb_exec(c, m->sql) == 0, "%s", m->name);
		snprintf(ver, sizeof(ver), "%d", m->version);
		v[0] = ver;
		v[1] = m->name;
		v[2] = m->sql;
		r = PQexecParams(c,
		    "INSERT INTO schema_migrations (version, name, checksum)"
		    " VALUES ($1::integer, $2, md5($3))",
		    3, NULL, v, NULL, NULL, 0);
		PQclear(r);
	}
	tdb_exec(c, "INSERT INTO mailboxes (name) VALUES ('old')");
	tdb_exec(c,
	    "INSERT INTO reason_overrides VALUES ('mailboxfull', "
	    "'hard_after', 2)");
	/* none at the window's edge: the old list is read before the
	 * migration, the new one after it */
	edges = 0;
	for (i = 0; i < 300; i++)
		CHECK(insert_batch(c, 1 + (int)rnd(20)) == 0, "insert");
	edges = 1;
	tdb_exec(c,
	    "SELECT unsuppress(address, 'old lift') FROM "
	    "(SELECT address FROM suppressions ORDER BY address "
	    "LIMIT 20) x");
	tdb_exec(c,
	    "CREATE TABLE old_list AS SELECT " TDB_LIST_COLS
	    " FROM suppressions");
	before_b = tdb_count(c, "SELECT count(*) FROM bounces");
	before_m = tdb_count(c, "SELECT count(*) FROM messages");
	o = tdb_options(muri);
	CHECK(store_open(&o, &st, &err) == 0, "%s", err.msg);
	CHECK(store_migrate(st, NULL, &err) == 0, "%s", err.msg);
	store_free(&st);
	CHECK_INT(tdb_count(c, "SELECT count(*) FROM bounces"), before_b);
	CHECK_INT(tdb_count(c, "SELECT count(*) FROM messages"), before_m);
	CHECK(tdb_count(c, "SELECT count(*) FROM old_list") > 50,
	    "a list worth comparing");
	d = tdb_count(c,
	    "SELECT count(*) FROM ((SELECT " TDB_LIST_COLS
	    " FROM suppressions EXCEPT SELECT * FROM old_list) UNION ALL"
	    " (SELECT * FROM old_list EXCEPT SELECT " TDB_LIST_COLS
	    " FROM suppressions)) x");
	CHECK(d == 0, "%lld differences after migrating", d);
	/* the feed starts after the history */
	CHECK_INT(tdb_count(c, "SELECT count(*) FROM suppression_changes"), 0);
	PQfinish(c);
	tdb_drop("bouncer_store_migr");
	free(muri);
	seed = saved;
}

/* One statement naming more addresses than the server's lock table holds
 * locks (40,000 here; 64 per connection by default), and then every
 * address evaluated again after a change of settings: both go through,
 * and the list is right. */
static void
t_many_addresses_at_once(void)
{
	CHECK_INT(tdb_exec(db,
	              "WITH m AS (INSERT INTO messages (mailbox_id, uidl) "
	              "VALUES ((SELECT min(id) FROM mailboxes), 'many') "
	              "RETURNING id) INSERT INTO bounces (message_id, "
	              "recipient, recipient_domain, class, reason, action) "
	              "SELECT m.id, 'many' || g || '@many.example', "
	              "'many.example', 'hard', 'userunknown', 'failed' "
	              "FROM m, generate_series(1, 40000) g"),
	    0);
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppressions WHERE domain = "
	              "'many.example'"),
	    40000);
	tdb_exec(db, "UPDATE settings SET soft_threshold = soft_threshold + 1");
	CHECK(tdb_count(db, "SELECT suppression_rules_sync()") >= 40000,
	    "every address evaluated again");
	CHECK_INT(tdb_count(db,
	              "SELECT count(*) FROM suppressions WHERE domain = "
	              "'many.example' AND suppressed_because = 'hard_bounce'"),
	    40000);
	CHECK_INT(differences(db), 0);
}

int
main(void)
{
	const char *s = getenv("BOUNCER_TEST_SEED");

	if (getenv("BOUNCER_TEST_PG") == NULL) {
		printf("SKIP test_store_state: BOUNCER_TEST_PG not set\n");
		return 0;
	}
	seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
	printf("seed %u\n", seed);
	uri = tdb_fresh("bouncer_store_state");
	if (uri == NULL) {
		printf("FAIL test_store_state: no test database\n");
		return 1;
	}
	db = tdb_connect(uri);
	{
		struct store_options o = tdb_options(uri);
		struct store *st = NULL;
		struct err err = {""};
		int64_t mb;

		if (db == NULL || store_open(&o, &st, &err) != 0 ||
		    store_migrate(st, NULL, &err) != 0 ||
		    store_mailbox_id(st, "eq", NULL, NULL, &mb, &err) != 0) {
			printf("FAIL test_store_state: setup: %s\n", err.msg);
			return 1;
		}
		store_free(&st);
	}
	RUN(t_migrate_existing_database);
	RUN(t_lift_after_folded_rows);
	RUN(t_repeat_bounce_updates_in_place);
	RUN(t_old_months_left_out);
	RUN(t_equivalence);
	RUN(t_two_writers_notify);
	RUN(t_many_addresses_at_once);
	PQfinish(db);
	tdb_drop("bouncer_store_state");
	free(uri);
	return test_done();
}
