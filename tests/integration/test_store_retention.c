/*
 * test_store_retention.c - the partitioned bounce history and retention.
 *   * A database built at schema 014 (the embedded migrations up to 014)
 *     with fourteen months of histories in it (every class, delays,
 *     uncounted rows, overrides, lifts, delivery reports, a report dated
 *     2001, failed and quarantined messages, raw bytes) is migrated to
 *     the current schema: every bounce row, ledger row, state row and
 *     change is still there, value for value, and the list is the same.
 *   * Retention (store_apply_retention) on it: the months older than
 *     retention.bounces are dropped whole, old rows of the default
 *     partition deleted, and the suppression list and every address's
 *     state are unchanged, also when every address is evaluated again
 *     from what is left; a lift and a new bounce afterwards behave as
 *     without retention.  retention.ledger removes exactly the ledger
 *     rows of recorded bounces deleted from the server before then.
 *   * A month missing its partition: rows go to the default partition and
 *     move into the month's own table when it is created.
 * Skips without BOUNCER_TEST_PG.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/schema_sql.h"
#include "store/store.h"
#include "test.h"
#include "test_store_db.h"
#include "base/util.h"

static char *uri;
static PGconn *db;

/* Applies the embedded migrations up to version max, recording them as
 * store_migrate() does. */
static void
migrate_to(PGconn *c, int max)
{
	size_t i;

	tdb_exec(c,
	    "CREATE TABLE schema_migrations (version integer PRIMARY "
	    "KEY, name text NOT NULL, checksum text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())");
	for (i = 0; i < store_migration_nsrcs; i++) {
		const struct store_migration_src *m = &store_migration_srcs[i];
		const char *v[3];
		char ver[16];
		PGresult *r;

		if (m->version > max)
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
}

/* Messages lo..hi and their bounce rows, in one statement each (the
 * suppression trigger runs per statement).  Dates spread over fourteen
 * months, none within a day of the soft window's edge (the lists are
 * compared a while apart); a few dated 2001. */
static int
fill(PGconn *c, int lo, int hi)
{
	char *sql;
	int rc;

	sql = xasprintf(
	    "INSERT INTO messages (mailbox_id, uidl, outcome, kind, raw,"
	    " error, failures, fetched_at, processed_at, deleted_at) "
	    "SELECT (SELECT id FROM mailboxes WHERE name = 'm' || (1 + g %% "
	    "2)),"
	    " 'u' || g,"
	    " CASE WHEN g %% 50 = 0 THEN 'failed'"
	    "  WHEN g %% 97 = 0 THEN 'quarantined' ELSE 'recorded' END,"
	    " CASE WHEN g %% 13 = 0 THEN 'unknown' ELSE 'bounce' END,"
	    " CASE WHEN g %% 3 = 0 THEN convert_to('raw ' || g, 'UTF8')"
	    "  || '\\x00ff'::bytea END,"
	    " CASE WHEN g %% 50 = 0 OR g %% 97 = 0 THEN 'bad ' || g END,"
	    " CASE WHEN g %% 50 = 0 OR g %% 97 = 0 THEN 1 + g %% 3 ELSE 0 END,"
	    " now() - (g %% 420) * interval '1 day',"
	    " now() - (g %% 420) * interval '1 day',"
	    " CASE WHEN g %% 4 = 0 THEN NULL"
	    "  ELSE now() - (g %% 400) * interval '1 day' END "
	    "FROM generate_series(%d, %d) g",
	    lo, hi);
	rc = tdb_exec(c, sql);
	free(sql);
	if (rc != 0)
		return rc;
	sql = xasprintf(
	    "WITH m AS (SELECT id, substr(uidl, 2)::integer AS g FROM messages"
	    " WHERE substr(uidl, 2)::integer BETWEEN %d AND %d"
	    " AND outcome = 'recorded' AND kind <> 'unknown'),"
	    " x AS (SELECT m.id, m.g, r.ord,"
	    "  abs(hashint4(m.g * 3 + r.ord)) AS h FROM m"
	    "  CROSS JOIN generate_series(1, 1 + m.g %% 2) r(ord)),"
	    " y AS (SELECT x.*, x.h %% 100 AS k, x.h %% 400 AS a,"
	    "  CASE WHEN x.g %% 211 = 0 THEN '2001-03-04 05:06:07+00'"
	    "   ::timestamptz"
	    "  WHEN x.g %% 193 = 0 THEN now() + interval '10 hours'"
	    "  ELSE now() - (CASE WHEN (x.h %% 420) BETWEEN 28 AND 32 THEN 40"
	    "   ELSE x.h %% 420 END) * interval '1 day'"
	    "   - (x.h %% 80000) * interval '1 second' END AS ts FROM x) "
	    "INSERT INTO bounces (message_id, recipient, recipient_domain,"
	    " class, reason, action, status, diagnostic, counts,"
	    " not_counted_because, original_headers, campaign_id, bounced_at) "
	    "SELECT y.id, 'a' || y.a || '@d' || (y.a %% 7) || '.example',"
	    " 'd' || (y.a %% 7) || '.example',"
	    " CASE WHEN y.k < 45 THEN 'soft' WHEN y.k < 65 THEN 'hard'"
	    "  WHEN y.k < 70 THEN 'complaint' WHEN y.k < 78 THEN 'delivered'"
	    "  WHEN y.k < 85 THEN 'autoreply' WHEN y.k < 90 THEN 'unknown'"
	    "  ELSE 'soft' END,"
	    " CASE WHEN y.k < 15 THEN 'mailboxfull' WHEN y.k < 30 THEN"
	    "  'blocked' WHEN y.k < 45 THEN 'expired' WHEN y.k < 55 THEN"
	    "  'userunknown' WHEN y.k < 65 THEN 'hostunknown' WHEN y.k < 70"
	    "  THEN 'feedback' WHEN y.k < 78 THEN 'delivered' WHEN y.k < 85"
	    "  THEN 'vacation' WHEN y.k < 90 THEN 'undefined'"
	    "  ELSE 'mailboxfull' END,"
	    " CASE WHEN y.k >= 90 THEN 'delayed' WHEN y.k < 70 THEN 'failed'"
	    "  END,"
	    " CASE WHEN y.k < 45 THEN '4.2.2' WHEN y.k < 65 THEN '5.1.1' END,"
	    " 'diag ' || y.g || '/' || y.ord,"
	    " y.g %% 17 <> 0, CASE WHEN y.g %% 17 = 0 THEN 'first_pass' END,"
	    " CASE WHEN y.g %% 5 = 0 THEN jsonb_build_object('X-Id', y.g)"
	    "  ELSE '{}' END,"
	    " CASE WHEN y.g %% 3 = 0 THEN 'c' || (y.g %% 4) END, y.ts "
	    "FROM y ORDER BY y.id, y.ord",
	    lo, hi);
	rc = tdb_exec(c, sql);
	free(sql);
	return rc;
}

/* Differences between a table or view and its copy (both directions). */
static long long
diff(PGconn *c, const char *cols, const char *now, const char *then)
{
	char *sql = xasprintf(
	    "SELECT count(*) FROM ((SELECT %s FROM %s EXCEPT ALL SELECT %s "
	    "FROM %s) UNION ALL (SELECT %s FROM %s EXCEPT ALL SELECT %s "
	    "FROM %s)) x",
	    cols, now, cols, then, cols, then, cols, now);
	long long n = tdb_count(c, sql);

	free(sql);
	return n;
}

#define STATE_COLS \
	"address, domain, suppressed, suppressed_because, reason, class, " \
	"hard_bounces, complaints, recent_soft_bounces, first_bounced_at, " \
	"last_bounced_at, suppressed_since, lifted_at, soft_expires_at"

static void
t_migrate_from_014_then_retention(void)
{
	char *muri = tdb_fresh("bouncer_store_retention_migr");
	PGconn *c = muri ? tdb_connect(muri) : NULL;
	struct store_options o;
	struct store *st = NULL;
	struct err err = {""};
	struct store_retention_result res;
	struct store_message m;
	struct record rec;
	struct record_rcpt b;
	enum store_result sr;
	long long expect;
	int i;

	CHECK(c != NULL, "database");
	if (c == NULL)
		return;
	migrate_to(c, 14);
	tdb_exec(c, "INSERT INTO mailboxes (name) VALUES ('m1'), ('m2')");
	tdb_exec(c,
	    "INSERT INTO reason_overrides VALUES ('blocked', 'hard_after', 2),"
	    " ('expired', 'never', NULL)");
	tdb_exec(c, "SELECT suppression_rules_sync()");
	for (i = 0; i < 10; i++) {
		CHECK(fill(c, 1 + i * 300, 300 + i * 300) == 0, "fill %d", i);
		if (i == 6)
			tdb_exec(c,
			    "SELECT unsuppress(address, 'checked') FROM "
			    "(SELECT address FROM suppressions ORDER BY "
			    "address "
			    "LIMIT 15) x");
	}
	tdb_exec(c, "CREATE TABLE old_bounces AS SELECT * FROM bounces");
	tdb_exec(c, "CREATE TABLE old_messages AS SELECT * FROM messages");
	tdb_exec(c,
	    "CREATE TABLE old_state AS SELECT * FROM suppression_state");
	tdb_exec(c,
	    "CREATE TABLE old_list AS SELECT " TDB_LIST_COLS
	    " FROM suppressions");
	tdb_exec(c,
	    "CREATE TABLE old_changes AS SELECT * FROM suppression_changes");
	CHECK(tdb_count(c, "SELECT count(*) FROM old_bounces") > 4000,
	    "a history worth migrating");
	CHECK(tdb_count(c, "SELECT count(*) FROM old_list") > 100,
	    "a list worth comparing");
	CHECK(tdb_count(c, "SELECT count(*) FROM old_changes") > 100,
	    "a feed worth comparing");

	/* to the current schema, through the store */
	o = tdb_options(muri);
	CHECK(store_open(&o, &st, &err) == 0, "%s", err.msg);
	CHECK(store_migrate(st, NULL, &err) == 0, "%s", err.msg);
	CHECK_SQL(c, "SELECT relkind FROM pg_class WHERE relname = 'bounces'",
	    "p");
	CHECK_INT(diff(c, "*", "bounces", "old_bounces"), 0);
	CHECK_INT(diff(c, "*", "messages", "old_messages"), 0);
	CHECK_INT(diff(c, STATE_COLS ", updated_at", "suppression_state",
	              "old_state"),
	    0);
	CHECK_INT(diff(c, TDB_LIST_COLS, "suppressions", "old_list"), 0);
	CHECK_INT(diff(c, "*", "suppression_changes", "old_changes"), 0);
	CHECK_INT(tdb_count(c, "SELECT count(*) FROM bounces"),
	    tdb_count(c, "SELECT count(*) FROM old_bounces"));
	/* a month per table; only the 2001 reports in the default one */
	CHECK(tdb_count(c, "SELECT count(*) FROM bounce_partitions()") >= 15,
	    "monthly partitions");
	CHECK_INT(tdb_count(c, "SELECT count(*) FROM bounces_default"),
	    tdb_count(c,
	        "SELECT count(*) FROM old_bounces WHERE bounced_at < "
	        "'2002-01-01'"));
	CHECK(tdb_count(c, "SELECT count(*) FROM bounces_default") > 0,
	    "old reports");
	CHECK_INT(tdb_count(c,
	              "SELECT count(*) FROM suppression_evidence WHERE "
	              "uidl IS NULL"),
	    0);

	/* recording goes on: new ids, the state follows */
	memset(&m, 0, sizeof(m));
	memset(&rec, 0, sizeof(rec));
	memset(&b, 0, sizeof(b));
	b.recipient = "fresh@d1.example";
	b.cls = RECORD_CLASS_HARD;
	b.reason = "userunknown";
	b.action = "failed";
	m.mailbox_id =
	    tdb_count(c, "SELECT id FROM mailboxes WHERE name = 'm1'");
	m.uidl = "after-migration";
	m.size = 100;
	m.rec = &rec;
	rec.kind = RECORD_KIND_BOUNCE;
	rec.rcpts = &b;
	rec.nrcpts = 1;
	CHECK(store_record(st, &m, &sr, &err) == 0 && sr == STORE_WRITTEN, "%s",
	    err.msg);
	CHECK_INT(tdb_count(c,
	              "SELECT count(*) FROM bounces WHERE id > (SELECT "
	              "max(id) FROM old_bounces)"),
	    1);
	CHECK_SQL(c,
	    "SELECT suppressed_because FROM suppressions WHERE address = "
	    "'fresh@d1.example'",
	    "hard_bounce");
	tdb_exec(c, "DELETE FROM old_state");
	tdb_exec(c, "INSERT INTO old_state SELECT * FROM suppression_state");
	tdb_exec(c, "DELETE FROM old_list");
	tdb_exec(c,
	    "INSERT INTO old_list SELECT " TDB_LIST_COLS " FROM suppressions");

	/* retention: 90 days of bounce rows, 200 days of ledger rows; no
	 * pass has read a mailbox's list since the migration, so no ledger
	 * row is known to be gone yet */
	CHECK(store_apply_retention(st, 90 * 86400, 200 * 86400, &res, &err) ==
	        0,
	    "%s", err.msg);
	CHECK(res.bounces > 1000, "%lld bounce rows removed",
	    (long long)res.bounces);
	CHECK_INT(res.ledger, 0);
	CHECK_INT(tdb_count(c, "SELECT count(*) FROM bounces"),
	    tdb_count(c, "SELECT count(*) FROM old_bounces") + 1 - res.bounces);
	/* whole months: nothing left before the month of the cutoff, all
	 * of the months after it */
	CHECK_INT(tdb_count(c,
	              "SELECT count(*) FROM bounces WHERE bounced_at < "
	              "date_trunc('month', (now() - interval '90 days') AT "
	              "TIME ZONE 'UTC') AT TIME ZONE 'UTC'"),
	    0);
	CHECK_INT(tdb_count(c,
	              "SELECT count(*) FROM bounces WHERE bounced_at >= "
	              "now() - interval '90 days'"),
	    tdb_count(c,
	        "SELECT count(*) FROM old_bounces WHERE bounced_at >= "
	        "now() - interval '90 days'") +
	        1);
	CHECK_INT(tdb_count(c,
	              "SELECT count(*) FROM bounce_partitions() WHERE "
	              "upper_bound <= now() - interval '90 days'"),
	    0);
	CHECK_INT(tdb_count(c, "SELECT count(*) FROM bounces_default"), 0);
	CHECK(tdb_count(c, "SELECT count(*) FROM suppression_carried") > 100,
	    "history carried");
	/* the list and the state are untouched ... */
	CHECK_INT(diff(c, STATE_COLS ", updated_at", "suppression_state",
	              "old_state"),
	    0);
	CHECK_INT(diff(c, TDB_LIST_COLS, "suppressions", "old_list"), 0);
	/* ... and come out the same when every address is evaluated again
	 * from the rows left and the carried groups */
	CHECK_INT(tdb_count(c,
	              "SELECT suppression_state_refresh(ARRAY(SELECT address "
	              "FROM suppression_state), 'settings')"),
	    0);
	CHECK_INT(diff(c, STATE_COLS, "suppression_state", "old_state"), 0);
	CHECK_INT(tdb_count(c,
	              "SELECT count(*) FROM suppression_state_compute(ARRAY("
	              "SELECT address FROM suppression_state)) n JOIN "
	              "old_state o USING (address) WHERE (n.suppressed, "
	              "n.hard_bounces, n.complaints, n.first_bounced_at, "
	              "n.reason) IS DISTINCT FROM (o.suppressed, "
	              "o.hard_bounces, o.complaints, o.first_bounced_at, "
	              "o.reason)"),
	    0);
	/* the ledger: exactly the recorded bounces gone from the server
	 * for more than 200 days */
	expect = tdb_count(c,
	    "SELECT count(*) FROM old_messages WHERE deleted_at < now() - "
	    "interval '200 days' AND outcome = 'recorded' AND kind <> "
	    "'unknown'");
	CHECK(expect > 100, "ledger rows to remove");
	/* a pass has read the lists now */
	tdb_exec(c, "UPDATE mailboxes SET listed_at = now()");
	CHECK(store_apply_retention(st, 90 * 86400, 200 * 86400, &res, &err) ==
	        0,
	    "%s", err.msg);
	CHECK_INT(res.bounces, 0);
	CHECK_INT(res.ledger, expect);
	CHECK_INT(diff(c, "id", "messages",
	              "(SELECT id FROM old_messages WHERE NOT coalesce("
	              "deleted_at < now() - interval '200 days' AND outcome "
	              "= 'recorded' AND kind <> 'unknown', false) UNION ALL "
	              "SELECT id FROM "
	              "messages WHERE uidl = 'after-migration') x"),
	    0);
	/* again: nothing due */
	CHECK(store_apply_retention(st, 90 * 86400, 200 * 86400, &res, &err) ==
	        0,
	    "%s", err.msg);
	CHECK_INT(res.bounces, 0);
	CHECK_INT(res.ledger, 0);

	/* a suppressed address whose hard bounces are all carried: lifted,
	 * it leaves the list; a new hard bounce counts alone */
	{
		char *a = tdb_value(c,
		    "SELECT s.address FROM suppression_state s WHERE "
		    "s.suppressed_because = 'hard_bounce' AND NOT EXISTS "
		    "(SELECT 1 FROM bounces b WHERE b.recipient = s.address) "
		    "ORDER BY s.address LIMIT 1");
		char *sql;

		CHECK(strcmp(a, "(none)") != 0, "an address only carried");
		sql = xasprintf("SELECT unsuppress('%s', 'confirmed')", a);
		CHECK_SQL(c, sql, "t");
		free(sql);
		sql = xasprintf("SELECT count(*) FROM suppressions WHERE "
		                "address = '%s'",
		    a);
		CHECK_INT(tdb_count(c, sql), 0);
		free(sql);
		b.recipient = a;
		m.uidl = "after-lift";
		CHECK(store_record(st, &m, &sr, &err) == 0 &&
		        sr == STORE_WRITTEN,
		    "%s", err.msg);
		sql = xasprintf("SELECT hard_bounces || ' ' || "
		                "suppressed_because FROM suppressions WHERE "
		                "address = '%s'",
		    a);
		CHECK_SQL(c, sql, "1 hard_bounce");
		free(sql);
		free(a);
	}
	store_free(&st);
	PQfinish(c);
	tdb_drop("bouncer_store_retention_migr");
	free(muri);
}

/* Rows of a month without a partition wait in the default partition and
 * move into the month's table when it is made. */
static void
t_missing_month(void)
{
	long long total = tdb_count(db, "SELECT count(*) FROM bounces");

	CHECK(tdb_exec(db,
	          "INSERT INTO mailboxes (name) VALUES ('later');"
	          "INSERT INTO messages (mailbox_id, uidl) SELECT id, 'x1' "
	          "FROM mailboxes WHERE name = 'later';"
	          "INSERT INTO bounces (message_id, recipient, class, "
	          "bounced_at) SELECT id, 'later@example.org', 'hard', "
	          "now() + interval '5 months' FROM messages WHERE uidl = "
	          "'x1'") == 0,
	    "insert");
	CHECK_SQL(db,
	    "SELECT tableoid::regclass::text FROM bounces WHERE recipient = "
	    "'later@example.org'",
	    "bounces_default");
	CHECK(tdb_count(db, "SELECT bounce_partitions_ensure(6)") >= 5,
	    "months created");
	CHECK_SQL(db,
	    "SELECT tableoid::regclass::text = 'bounces_' || to_char(now() AT "
	    "TIME ZONE 'UTC' + interval '5 months', 'YYYY_MM') FROM bounces "
	    "WHERE recipient = 'later@example.org'",
	    "t");
	CHECK_INT(tdb_count(db, "SELECT count(*) FROM bounces"), total + 1);
	CHECK_INT(tdb_count(db, "SELECT count(*) FROM bounces_default"), 0);
	CHECK_SQL(db,
	    "SELECT suppressed_because FROM suppressions WHERE address = "
	    "'later@example.org'",
	    "hard_bounce");
	/* nothing to do the second time */
	CHECK_INT(tdb_count(db, "SELECT bounce_partitions_ensure(6)"), 0);
}

int
main(void)
{
	struct store_options o;
	struct store *s = NULL;
	struct err err = {""};

	if (getenv("BOUNCER_TEST_PG") == NULL) {
		printf("SKIP test_store_retention: BOUNCER_TEST_PG not set\n");
		return 0;
	}
	uri = tdb_fresh("bouncer_store_retention");
	if (uri == NULL) {
		printf("FAIL test_store_retention: no test database\n");
		return 1;
	}
	db = tdb_connect(uri);
	o = tdb_options(uri);
	if (db == NULL || store_open(&o, &s, &err) != 0 ||
	    store_migrate(s, NULL, &err) != 0) {
		printf("FAIL test_store_retention: setup: %s\n", err.msg);
		return 1;
	}
	store_free(&s);
	RUN(t_migrate_from_014_then_retention);
	RUN(t_missing_month);
	PQfinish(db);
	tdb_drop("bouncer_store_retention");
	free(uri);
	return test_done();
}
